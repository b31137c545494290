/* httpj.h - JSON answers of the HTTP servers (the orchestrator's public API,
 * order-svc's query API): one body shape for success and one for errors,
 * {"error": code, "field"?: name, "message"?: text}, so that clients and the
 * orchestrator's relay read every service's errors the same way. */
#ifndef CG_HTTPJ_H
#define CG_HTTPJ_H

struct evhttp_request;

/* Sends json (a json_t *, reference stolen; NULL sends a 500) with
 * Content-Type application/json and a trailing newline. */
void httpj_reply(struct evhttp_request *req, int code, void *json);

/* Sends {"error": error, "field": field?, "message": message?}; field and
 * message may be NULL or "". */
void httpj_error(struct evhttp_request *req, int code, const char *error, const char *field,
                 const char *message);

/* The standard reason phrase of the codes the services send. */
const char *httpj_reason(int code);

#endif
