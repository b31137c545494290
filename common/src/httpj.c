/* httpj.c - JSON replies over evhttp; see httpj.h. */
#include "httpj.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

const char *httpj_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Internal Server Error";
    }
}

void httpj_reply(struct evhttp_request *req, int code, void *json)
{
    json_t *j = json;
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    struct evbuffer *buf = evbuffer_new();

    if (text == NULL || buf == NULL) {
        code = 500;
        free(text);
        text = strdup("{\"error\":\"internal\"}");
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (buf != NULL && text != NULL) {
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
    }
    evhttp_send_reply(req, code, httpj_reason(code), buf);
    if (buf != NULL)
        evbuffer_free(buf);
    free(text);
    json_decref(j);
}

void httpj_error(struct evhttp_request *req, int code, const char *error, const char *field,
                 const char *message)
{
    json_t *j = json_pack("{s:s}", "error", error);

    if (j != NULL && field != NULL && field[0] != '\0')
        json_object_set_new(j, "field", json_string(field));
    if (j != NULL && message != NULL && message[0] != '\0')
        json_object_set_new(j, "message", json_string(message));
    httpj_reply(req, code, j);
}
