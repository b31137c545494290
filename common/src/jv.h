/* jv.h - strict decoding of JSON requests and messages (over jansson).
 *
 * A request or message is described once as a table of fields over a C
 * struct; jv_decode() accepts only a top-level object within a size limit,
 * whose keys are all known, never repeated, of the right type and within
 * range, with every required key present. The first problem found is
 * reported with the field's name, so an HTTP 400 can say which field is
 * wrong. Strings are copied into fixed char arrays of the struct: a decoded
 * struct owns no memory and outlives the parsed document. */
#ifndef CG_JV_H
#define CG_JV_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "status.h"

enum jv_type {
    JV_INT = 0,      /* long long member; JSON integer (not 1.0, not "1") within [min, max] */
    JV_STRING = 1,   /* char[size] member; length in [min, size-1], no NUL bytes */
    JV_BOOL = 2,     /* int member; JSON true/false */
    JV_TYPE_MAX
};

#define JV_MAX_FIELDS 64   /* fields per table: the presence mask is 64 bits */

typedef struct jv_field {
    const char *name;
    enum jv_type type;
    int required;
    size_t offset;   /* offsetof(struct, member) */
    size_t size;     /* sizeof(member): the char array's size for JV_STRING */
    long long min;   /* JV_INT: smallest value; JV_STRING: shortest length */
    long long max;   /* JV_INT: largest value (JV_STRING uses size - 1) */
} jv_field;

#define JV_INT_FIELD(type, member, req, lo, hi) \
    { #member, JV_INT, (req), offsetof(type, member), sizeof(((type *)0)->member), (lo), (hi) }
#define JV_STR_FIELD(type, member, req, minlen) \
    { #member, JV_STRING, (req), offsetof(type, member), sizeof(((type *)0)->member), (minlen), 0 }
#define JV_BOOL_FIELD(type, member, req) \
    { #member, JV_BOOL, (req), offsetof(type, member), sizeof(((type *)0)->member), 0, 1 }

/* What went wrong, for a 400 answer or a dead-letter reason. */
typedef struct jv_error {
    int code;         /* CG_ERR_INVALID, CG_ERR_FULL (too large) or CG_ERR_NOMEM */
    char field[64];   /* the field at fault; empty when the document as a whole is */
    char msg[200];    /* what is wrong with it */
} jv_error;

/* Parses buf (len bytes, not NUL-terminated) and decodes it into out.
 * Absent optional fields keep the value out had; *present (may be NULL)
 * gets bit i set for every field i found. */
int jv_decode(const char *buf, size_t len, size_t max_len, const jv_field *fields,
              size_t n_fields, void *out, uint64_t *present, jv_error *err) CG_MUSTCHECK;

/* Decodes an already parsed object (e.g. one item of a batch array).
 * Duplicate keys must have been rejected by the parser (JSON_REJECT_DUPLICATES). */
int jv_decode_object(const json_t *obj, const jv_field *fields, size_t n_fields, void *out,
                     uint64_t *present, jv_error *err) CG_MUSTCHECK;

/* Parses buf strictly (size limit, duplicate keys rejected, top-level object)
 * and returns a new reference in *root for callers whose documents hold
 * arrays (batches). */
int jv_parse_object_new(const char *buf, size_t len, size_t max_len, json_t **root,
                        jv_error *err) CG_MUSTCHECK;

#endif
