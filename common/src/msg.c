/* msg.c - saga message names, topology and batch codec; see msg.h. */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

static const char *const msg_kind_names[MSG_KIND_MAX] = {
    "stock.reserve", "stock.release", "stock.reply", "order.create", "order.cancel", "order.reply",
};

/* Largest ids accepted: MariaDB BIGINT UNSIGNED columns, kept in signed range. */
#define MSG_ID_MAX 9000000000000000000LL
/* grab_time: 2000-01-01 .. 2200-01-01 in milliseconds. */
#define MSG_TIME_MIN 946684800000LL
#define MSG_TIME_MAX 7258118400000LL

static const jv_field msg_stock_fields[] = {
    JV_STR_FIELD(msg_item, saga_id, 1, MSG_SAGA_ID_LEN),
    JV_INT_FIELD(msg_item, coupon_id, 1, 1, MSG_ID_MAX),
    JV_INT_FIELD(msg_item, user_id, 1, 1, MSG_ID_MAX),
};

static const jv_field msg_order_fields[] = {
    JV_STR_FIELD(msg_item, saga_id, 1, MSG_SAGA_ID_LEN),
    JV_INT_FIELD(msg_item, user_id, 1, 1, MSG_ID_MAX),
    JV_INT_FIELD(msg_item, coupon_id, 1, 1, MSG_ID_MAX),
    JV_INT_FIELD(msg_item, room_id, 1, 1, MSG_ID_MAX),
    JV_INT_FIELD(msg_item, grab_time, 1, MSG_TIME_MIN, MSG_TIME_MAX),
};

static const jv_field msg_reply_fields[] = {
    JV_STR_FIELD(msg_item, saga_id, 1, MSG_SAGA_ID_LEN),
    JV_STR_FIELD(msg_item, result, 1, 1),
    JV_STR_FIELD(msg_item, reason, 0, 1),
};

/* The results each reply kind may carry. */
static const char *const msg_stock_results[] = {MSG_RESULT_RESERVED, MSG_RESULT_REJECTED,
                                                MSG_RESULT_RELEASED, NULL};
static const char *const msg_order_results[] = {MSG_RESULT_CREATED, MSG_RESULT_FAILED,
                                                MSG_RESULT_CANCELLED, NULL};

const char *msg_kind_name(enum msg_kind kind)
{
    return (kind >= 0 && kind < MSG_KIND_MAX) ? msg_kind_names[kind] : "?";
}

int msg_kind_parse(const char *name, enum msg_kind *out)
{
    for (int i = 0; i < MSG_KIND_MAX; i++) {
        if (name != NULL && strcmp(name, msg_kind_names[i]) == 0) {
            *out = (enum msg_kind)i;
            return CG_OK;
        }
    }
    return CG_ERR_INVALID;
}

int msg_saga_id_valid(const char *s)
{
    size_t i;

    for (i = 0; i < MSG_SAGA_ID_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return s[i] == '\0';
}

int msg_saga_id_new(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[MSG_SAGA_ID_LEN / 2];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return CG_ERR_IO;
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[MSG_SAGA_ID_LEN] = '\0';
    return CG_OK;
}

static void msg_fields_of(enum msg_kind kind, const jv_field **fields, size_t *n)
{
    switch (kind) {
    case MSG_STOCK_RESERVE:
    case MSG_STOCK_RELEASE:
        *fields = msg_stock_fields;
        *n = sizeof(msg_stock_fields) / sizeof(msg_stock_fields[0]);
        break;
    case MSG_ORDER_CREATE:
    case MSG_ORDER_CANCEL:
        *fields = msg_order_fields;
        *n = sizeof(msg_order_fields) / sizeof(msg_order_fields[0]);
        break;
    case MSG_STOCK_REPLY:
    case MSG_ORDER_REPLY:
        *fields = msg_reply_fields;
        *n = sizeof(msg_reply_fields) / sizeof(msg_reply_fields[0]);
        break;
    default:
        abort(); /* callers check the kind first */
    }
}

static int msg_result_known(enum msg_kind kind, const char *result)
{
    const char *const *r = kind == MSG_STOCK_REPLY ? msg_stock_results : msg_order_results;

    for (; *r != NULL; r++) {
        if (strcmp(*r, result) == 0)
            return 1;
    }
    return 0;
}

/* Checks what the field table cannot: the saga id's alphabet, reply results. */
static int msg_check_item(enum msg_kind kind, const msg_item *item, jv_error *err)
{
    if (!msg_saga_id_valid(item->saga_id)) {
        err->code = CG_ERR_INVALID;
        snprintf(err->field, sizeof(err->field), "saga_id");
        snprintf(err->msg, sizeof(err->msg), "expected %d lower-case hex digits", MSG_SAGA_ID_LEN);
        return CG_ERR_INVALID;
    }
    if ((kind == MSG_STOCK_REPLY || kind == MSG_ORDER_REPLY) && !msg_result_known(kind, item->result)) {
        err->code = CG_ERR_INVALID;
        snprintf(err->field, sizeof(err->field), "result");
        snprintf(err->msg, sizeof(err->msg), "'%s' is not a result of %s", item->result,
                 msg_kind_name(kind));
        return CG_ERR_INVALID;
    }
    return CG_OK;
}

int msg_decode(enum msg_kind kind, const char *body, size_t len, msg_batch *batch, jv_error *err)
{
    json_t *root = NULL, *items;
    const jv_field *fields;
    size_t n_fields, i;
    int rc;

    batch->kind = kind;
    batch->n = 0;
    if (kind < 0 || kind >= MSG_KIND_MAX) {
        rc = CG_ERR_INVALID;
        snprintf(err->msg, sizeof(err->msg), "unknown message kind");
        err->field[0] = '\0';
        err->code = rc;
        goto done;
    }
    rc = jv_parse_object_new(body, len, MSG_MAX_BODY, &root, err);
    if (rc != CG_OK)
        goto done;
    items = json_object_get(root, "items");
    if (json_object_size(root) != 1 || !json_is_array(items) || json_array_size(items) == 0 ||
        json_array_size(items) > MSG_MAX_BATCH) {
        rc = err->code = CG_ERR_INVALID;
        snprintf(err->field, sizeof(err->field), "items");
        snprintf(err->msg, sizeof(err->msg), "expected {\"items\":[...]} with 1..%d items",
                 MSG_MAX_BATCH);
        goto done;
    }
    msg_fields_of(kind, &fields, &n_fields);
    for (i = 0; i < json_array_size(items); i++) {
        msg_item *item = &batch->items[i];
        char field[sizeof(err->field)];

        memset(item, 0, sizeof(*item));
        rc = jv_decode_object(json_array_get(items, i), fields, n_fields, item, NULL, err);
        if (rc == CG_OK)
            rc = msg_check_item(kind, item, err);
        if (rc != CG_OK) {
            /* Say which item: "items[3].user_id". */
            snprintf(field, sizeof(field), "items[%hu]%s%.30s", (unsigned short)i, err->field[0] ? "." : "",
                     err->field);
            memcpy(err->field, field, sizeof(field));
            goto done;
        }
    }
    batch->n = i;
done:
    json_decref(root);
    return rc;
}

static json_t *msg_item_json(enum msg_kind kind, const msg_item *it)
{
    switch (kind) {
    case MSG_STOCK_RESERVE:
    case MSG_STOCK_RELEASE:
        return json_pack("{s:s, s:I, s:I}", "saga_id", it->saga_id, "coupon_id",
                         (json_int_t)it->coupon_id, "user_id", (json_int_t)it->user_id);
    case MSG_ORDER_CREATE:
    case MSG_ORDER_CANCEL:
        return json_pack("{s:s, s:I, s:I, s:I, s:I}", "saga_id", it->saga_id, "user_id",
                         (json_int_t)it->user_id, "coupon_id", (json_int_t)it->coupon_id,
                         "room_id", (json_int_t)it->room_id, "grab_time",
                         (json_int_t)it->grab_time);
    case MSG_STOCK_REPLY:
    case MSG_ORDER_REPLY:
        if (it->reason[0] != '\0')
            return json_pack("{s:s, s:s, s:s}", "saga_id", it->saga_id, "result", it->result,
                             "reason", it->reason);
        return json_pack("{s:s, s:s}", "saga_id", it->saga_id, "result", it->result);
    default:
        return NULL;
    }
}

int msg_encode_new(const msg_batch *batch, char **body, size_t *len)
{
    json_t *root = NULL, *items = NULL;
    int rc = CG_OK;

    *body = NULL;
    if (batch->n == 0 || batch->n > MSG_MAX_BATCH) {
        rc = CG_ERR_INVALID;
        goto done;
    }
    items = json_array();
    root = json_pack("{s:o}", "items", items);
    if (items == NULL || root == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (json_array_append_new(items, msg_item_json(batch->kind, &batch->items[i])) != 0) {
            rc = CG_ERR_NOMEM;
            goto done;
        }
    }
    *body = json_dumps(root, JSON_COMPACT);
    if (*body == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    *len = strlen(*body);
done:
    if (root != NULL)
        json_decref(root);
    else if (items != NULL)
        json_decref(items);
    return rc;
}

void msg_topology(mq_topology *out, const char *reply_queue)
{
    static const mq_exchange_decl exchanges[] = {
        {MSG_EXCHANGE_CMD, "direct"},
        {MSG_EXCHANGE_DLX, "direct"},
    };
    static mq_queue_decl queues[] = {
        {MSG_QUEUE_STOCK, MSG_EXCHANGE_DLX, MSG_KEY_DEAD, MSG_QUEUE_MAX_LEN, 0},
        {MSG_QUEUE_ORDER, MSG_EXCHANGE_DLX, MSG_KEY_DEAD, MSG_QUEUE_MAX_LEN, 0},
        {MSG_QUEUE_DEAD, NULL, NULL, MSG_QUEUE_MAX_LEN, 0},
        {NULL, MSG_EXCHANGE_DLX, MSG_KEY_DEAD, MSG_QUEUE_MAX_LEN, 0}, /* the reply queue */
    };
    static const mq_binding_decl bindings[] = {
        {MSG_QUEUE_STOCK, MSG_EXCHANGE_CMD, MSG_KEY_STOCK},
        {MSG_QUEUE_ORDER, MSG_EXCHANGE_CMD, MSG_KEY_ORDER},
        {MSG_QUEUE_DEAD, MSG_EXCHANGE_DLX, MSG_KEY_DEAD},
    };

    memset(out, 0, sizeof(*out));
    out->exchanges = exchanges;
    out->n_exchanges = sizeof(exchanges) / sizeof(exchanges[0]);
    out->bindings = bindings;
    out->n_bindings = sizeof(bindings) / sizeof(bindings[0]);
    out->queues = queues;
    out->n_queues = 3;
    if (reply_queue != NULL) {
        /* mq_client_new copies the topology, so this static slot is only read
         * during that call; callers do not build topologies concurrently. */
        queues[3].name = reply_queue;
        out->n_queues = 4;
    }
}

/* The body as a JSON string when it is UTF-8, else as hex. */
static int msg_put_body(json_t *env, const mq_message *msg)
{
    static const char hex[] = "0123456789abcdef";
    json_t *s = json_stringn(msg->body, msg->body_len);
    char *h;
    int rc;

    if (s != NULL)
        return json_object_set_new(env, "body", s) == 0 ? CG_OK : CG_ERR_NOMEM;
    h = malloc(msg->body_len * 2 + 1);
    if (h == NULL)
        return CG_ERR_NOMEM;
    for (size_t i = 0; i < msg->body_len; i++) {
        h[2 * i] = hex[(unsigned char)msg->body[i] >> 4];
        h[2 * i + 1] = hex[(unsigned char)msg->body[i] & 15];
    }
    h[msg->body_len * 2] = '\0';
    rc = json_object_set_new(env, "body_hex", json_string(h)) == 0 ? CG_OK : CG_ERR_NOMEM;
    free(h);
    return rc;
}

int msg_dead_letter(mq_client *c, const mq_message *msg, const char *queue, const char *reason,
                    mq_confirm_cb on_confirm, void *arg)
{
    json_t *env;
    char *text = NULL;
    mq_props props = {0};
    int rc;

    env = json_pack("{s:s, s:s, s:s?, s:s?, s:b}", "reason", reason, "queue", queue, "type",
                    msg->type, "message_id", msg->message_id, "redelivered", msg->redelivered);
    if (env == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    rc = msg_put_body(env, msg);
    if (rc != CG_OK)
        goto done;
    text = json_dumps(env, JSON_COMPACT);
    if (text == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    props.type = "dead-letter";
    props.message_id = msg->message_id;
    props.correlation_id = msg->correlation_id;
    rc = mq_publish(c, MSG_EXCHANGE_DLX, MSG_KEY_DEAD, &props, text, strlen(text), on_confirm, arg);
done:
    free(text);
    json_decref(env);
    return rc;
}
