/* jv.c - strict JSON decoding; see jv.h. */
#include "jv.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int jv_fail(jv_error *err, int code, const char *field, const char *fmt, ...)
    CG_PRINTF(4, 5);

static int jv_fail(jv_error *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        err->code = code;
        snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *jv_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "an unknown type";
    }
}

static int jv_decode_field(const jv_field *f, const json_t *v, void *out, jv_error *err)
{
    char *member = (char *)out + f->offset;

    switch (f->type) {
    case JV_INT: {
        long long n;

        if (!json_is_integer(v))
            return jv_fail(err, CG_ERR_INVALID, f->name, "expected an integer, got %s",
                           jv_type_name(v));
        n = (long long)json_integer_value(v);
        if (n < f->min || n > f->max)
            return jv_fail(err, CG_ERR_INVALID, f->name, "%lld is out of range [%lld, %lld]",
                           n, f->min, f->max);
        memcpy(member, &n, sizeof(n));
        break;
    }
    case JV_STRING: {
        size_t len;

        if (!json_is_string(v))
            return jv_fail(err, CG_ERR_INVALID, f->name, "expected a string, got %s",
                           jv_type_name(v));
        len = json_string_length(v);
        if (memchr(json_string_value(v), '\0', len) != NULL)
            return jv_fail(err, CG_ERR_INVALID, f->name, "contains a NUL character");
        if ((long long)len < f->min || len + 1 > f->size)
            return jv_fail(err, CG_ERR_INVALID, f->name, "length %zu is out of range [%lld, %zu]",
                           len, f->min, f->size - 1);
        memcpy(member, json_string_value(v), len);
        member[len] = '\0';
        break;
    }
    case JV_BOOL: {
        int b;

        if (!json_is_boolean(v))
            return jv_fail(err, CG_ERR_INVALID, f->name, "expected true or false, got %s",
                           jv_type_name(v));
        b = json_is_true(v);
        memcpy(member, &b, sizeof(b));
        break;
    }
    default:
        return jv_fail(err, CG_ERR_INVALID, f->name, "field has an unknown type in its table");
    }
    return CG_OK;
}

int jv_decode_object(const json_t *obj, const jv_field *fields, size_t n_fields, void *out,
                     uint64_t *present, jv_error *err)
{
    const char *key;
    json_t *value;
    uint64_t found = 0;
    int rc;

    if (n_fields > JV_MAX_FIELDS)
        return jv_fail(err, CG_ERR_INVALID, NULL, "field table too large");
    if (!json_is_object(obj))
        return jv_fail(err, CG_ERR_INVALID, NULL, "expected a JSON object, got %s",
                       jv_type_name(obj));
    json_object_foreach((json_t *)obj, key, value) {
        size_t i;

        for (i = 0; i < n_fields && strcmp(fields[i].name, key) != 0; i++)
            ;
        if (i == n_fields)
            return jv_fail(err, CG_ERR_INVALID, key, "unknown field");
        rc = jv_decode_field(&fields[i], value, out, err);
        if (rc != CG_OK)
            return rc;
        found |= UINT64_C(1) << i;
    }
    for (size_t i = 0; i < n_fields; i++) {
        if (fields[i].required && !(found & (UINT64_C(1) << i)))
            return jv_fail(err, CG_ERR_INVALID, fields[i].name, "required field is missing");
    }
    if (present != NULL)
        *present = found;
    return CG_OK;
}

int jv_parse_object_new(const char *buf, size_t len, size_t max_len, json_t **root,
                        jv_error *err)
{
    json_error_t jerr;
    json_t *doc;

    *root = NULL;
    if (len > max_len)
        return jv_fail(err, CG_ERR_FULL, NULL, "document of %zu bytes exceeds the limit of %zu",
                       len, max_len);
    /* JSON_REJECT_DUPLICATES: {"user_id":1,"user_id":2} must not silently pick one. */
    doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return jv_fail(err, CG_ERR_NOMEM, NULL, "out of memory");
        return jv_fail(err, CG_ERR_INVALID, NULL, "invalid JSON at position %d: %s",
                       jerr.position, jerr.text);
    }
    if (!json_is_object(doc)) {
        int rc = jv_fail(err, CG_ERR_INVALID, NULL, "expected a JSON object, got %s",
                         jv_type_name(doc));
        json_decref(doc);
        return rc;
    }
    *root = doc;
    return CG_OK;
}

int jv_decode(const char *buf, size_t len, size_t max_len, const jv_field *fields,
              size_t n_fields, void *out, uint64_t *present, jv_error *err)
{
    json_t *root = NULL;
    int rc;

    rc = jv_parse_object_new(buf, len, max_len, &root, err);
    if (rc != CG_OK)
        goto done;
    rc = jv_decode_object(root, fields, n_fields, out, present, err);
done:
    json_decref(root);
    return rc;
}
