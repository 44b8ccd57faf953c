
/*
 * Copyright (C) The ngx_llm_router authors
 */


#include "ngx_http_llm_router.h"


/*
 * The rule-based router: "model":"NAME" where NAME is an llm_auto block.
 *
 *     llm_auto NAME {
 *         prompt  "~*(dosage|contraindicat)"  strong-model;
 *         last    "~*^translate"              cheap-model;
 *         tokens  >8000                       long-context-model;
 *         tools                               tool-model;
 *         images                              vision-model;
 *         default                             everyday-model;
 *     }
 *
 * Rules are tried in order; the first that matches names the model.
 * "prompt" matches the text of all messages (joined by newlines), "last"
 * the last user message; a regex starting with "~*" ignores case.
 * "tokens" compares the estimated prompt tokens (text bytes / 4).
 */


#define NGX_HTTP_LLM_RULE_PROMPT   1
#define NGX_HTTP_LLM_RULE_LAST     2
#define NGX_HTTP_LLM_RULE_TOKENS   3
#define NGX_HTTP_LLM_RULE_TOOLS    4
#define NGX_HTTP_LLM_RULE_IMAGES   5
#define NGX_HTTP_LLM_RULE_DEFAULT  6

#define NGX_HTTP_LLM_OP_GT         0
#define NGX_HTTP_LLM_OP_GE         1
#define NGX_HTTP_LLM_OP_LT         2
#define NGX_HTTP_LLM_OP_LE         3


typedef struct {
    ngx_uint_t                  type;
    ngx_regex_t                *regex;
    ngx_uint_t                  op;
    ngx_uint_t                  tokens;
    ngx_str_t                   target;
    ngx_http_llm_model_t       *model;
    ngx_str_t                   text;         /* as written, for the log */
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_llm_rule_t;


struct ngx_http_llm_auto_s {
    ngx_str_t                   name;
    ngx_array_t                 rules;        /* ngx_http_llm_rule_t */
    u_char                     *file;
    ngx_uint_t                  line;
};


/* what the rules look at, computed once and only when a rule needs it */

typedef struct {
    json_t                     *messages;     /* parsed, or */
    ngx_http_llm_member_t      *raw;          /* the client's bytes */
    ngx_str_t                   prompt;
    ngx_str_t                   last;
    size_t                      text_len;
    unsigned                    images:1;
    unsigned                    scanned:1;
    unsigned                    joined:1;
} ngx_http_llm_auto_input_t;


static char *ngx_http_llm_auto_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static void ngx_http_llm_auto_scan(ngx_http_llm_auto_input_t *in);
static ngx_int_t ngx_http_llm_auto_join(ngx_http_request_t *r,
    ngx_http_llm_auto_input_t *in);
static ngx_int_t ngx_http_llm_auto_read(ngx_http_request_t *r,
    ngx_http_llm_ctx_t *ctx, ngx_http_llm_auto_input_t *in);
static ngx_int_t ngx_http_llm_auto_raw(ngx_http_request_t *r,
    ngx_http_llm_auto_input_t *in);
static ngx_uint_t ngx_http_llm_auto_is(ngx_http_llm_member_t *m,
    const char *s);
static void ngx_http_llm_auto_text(json_t *content, size_t *len,
    ngx_uint_t *images);


char *
ngx_http_llm_auto_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_llm_main_conf_t *lmcf = conf;

    char                  *rv;
    ngx_str_t             *value;
    ngx_uint_t             i;
    ngx_conf_t             save;
    ngx_http_llm_auto_t   *au, **aup;
    ngx_http_llm_rule_t   *rule;

    value = cf->args->elts;

    if (ngx_http_llm_find_model(lmcf, &value[1]) != NULL
        || ngx_http_llm_find_auto(lmcf, &value[1]) != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate model name \"%V\" in \"llm_auto\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    au = ngx_pcalloc(cf->pool, sizeof(ngx_http_llm_auto_t));
    if (au == NULL) {
        return NGX_CONF_ERROR;
    }

    aup = ngx_array_push(&lmcf->autos);
    if (aup == NULL) {
        return NGX_CONF_ERROR;
    }

    *aup = au;

    au->name = value[1];
    au->file = cf->conf_file->file.name.data;
    au->line = cf->conf_file->line;

    if (ngx_array_init(&au->rules, cf->pool, 4, sizeof(ngx_http_llm_rule_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    save = *cf;
    cf->handler = ngx_http_llm_auto_line;
    cf->handler_conf = (char *) au;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rule = au->rules.elts;

    for (i = 0; i < au->rules.nelts; i++) {
        if (rule[i].type == NGX_HTTP_LLM_RULE_DEFAULT) {
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"llm_auto\" \"%V\" has no \"default\"", &au->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_llm_auto_line(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_http_llm_auto_t *au = conf;

    u_char               *p;
    size_t                len;
    ngx_str_t            *value, arg;
    ngx_uint_t            nargs, i;
    ngx_regex_compile_t   rc;
    ngx_http_llm_rule_t  *rule;
    u_char                errstr[NGX_MAX_CONF_ERRSTR];

    value = cf->args->elts;

    rule = ngx_array_push(&au->rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rule, sizeof(ngx_http_llm_rule_t));

    rule->file = cf->conf_file->file.name.data;
    rule->line = cf->conf_file->line;

    if (ngx_strcmp(value[0].data, "prompt") == 0) {
        rule->type = NGX_HTTP_LLM_RULE_PROMPT;
        nargs = 3;

    } else if (ngx_strcmp(value[0].data, "last") == 0) {
        rule->type = NGX_HTTP_LLM_RULE_LAST;
        nargs = 3;

    } else if (ngx_strcmp(value[0].data, "tokens") == 0) {
        rule->type = NGX_HTTP_LLM_RULE_TOKENS;
        nargs = 3;

    } else if (ngx_strcmp(value[0].data, "tools") == 0) {
        rule->type = NGX_HTTP_LLM_RULE_TOOLS;
        nargs = 2;

    } else if (ngx_strcmp(value[0].data, "images") == 0) {
        rule->type = NGX_HTTP_LLM_RULE_IMAGES;
        nargs = 2;

    } else if (ngx_strcmp(value[0].data, "default") == 0) {
        rule->type = NGX_HTTP_LLM_RULE_DEFAULT;
        nargs = 2;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown rule \"%V\" in \"llm_auto\" \"%V\", "
                           "expected \"prompt\", \"last\", \"tokens\", "
                           "\"tools\", \"images\" or \"default\"",
                           &value[0], &au->name);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts != nargs) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid number of arguments in \"%V\" rule of "
                           "\"llm_auto\" \"%V\"", &value[0], &au->name);
        return NGX_CONF_ERROR;
    }

    rule->target = value[nargs - 1];

    /* the rule as written, for the decision log */

    len = 0;

    for (i = 0; i < nargs - 1; i++) {
        len += value[i].len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    rule->text.data = p;

    for (i = 0; i < nargs - 1; i++) {
        p = ngx_sprintf(p, "%s%V", i ? " " : "", &value[i]);
    }

    rule->text.len = p - rule->text.data;

    if (rule->type == NGX_HTTP_LLM_RULE_TOKENS) {
        arg = value[1];
        p = arg.data;

        if (arg.len > 1 && p[0] == '>' && p[1] == '=') {
            rule->op = NGX_HTTP_LLM_OP_GE;
            p += 2;

        } else if (arg.len > 1 && p[0] == '<' && p[1] == '=') {
            rule->op = NGX_HTTP_LLM_OP_LE;
            p += 2;

        } else if (arg.len > 0 && p[0] == '>') {
            rule->op = NGX_HTTP_LLM_OP_GT;
            p++;

        } else if (arg.len > 0 && p[0] == '<') {
            rule->op = NGX_HTTP_LLM_OP_LT;
            p++;

        } else {
            goto invalid_tokens;
        }

        rule->tokens = ngx_atoi(p, arg.data + arg.len - p);

        if (rule->tokens == (ngx_uint_t) NGX_ERROR) {
            goto invalid_tokens;
        }

        return NGX_CONF_OK;
    }

    if (rule->type != NGX_HTTP_LLM_RULE_PROMPT
        && rule->type != NGX_HTTP_LLM_RULE_LAST)
    {
        return NGX_CONF_OK;
    }

    /* a regex, nginx style: "~*" ignores case, a bare "~" is optional */

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    arg = value[1];

    if (arg.len > 1 && arg.data[0] == '~' && arg.data[1] == '*') {
        rc.options = NGX_REGEX_CASELESS;
        arg.data += 2;
        arg.len -= 2;

    } else if (arg.len > 0 && arg.data[0] == '~') {
        arg.data++;
        arg.len--;
    }

    rc.pattern = arg;
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (arg.len == 0 || ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid regex \"%V\" in \"llm_auto\" \"%V\"%s%V",
                           &value[1], &au->name, rc.err.len ? ": " : "",
                           &rc.err);
        return NGX_CONF_ERROR;
    }

    rule->regex = rc.regex;

    return NGX_CONF_OK;

invalid_tokens:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"tokens\" condition \"%V\" in \"llm_auto\" "
                       "\"%V\", use e.g. \">8000\" or \"<=500\"",
                       &value[1], &au->name);

    return NGX_CONF_ERROR;
}


/* once all models are known: every rule must name one */

ngx_int_t
ngx_http_llm_auto_resolve(ngx_conf_t *cf, ngx_http_llm_main_conf_t *lmcf)
{
    ngx_uint_t              i, j;
    ngx_http_llm_auto_t   **au;
    ngx_http_llm_rule_t    *rule;

    au = lmcf->autos.elts;

    for (i = 0; i < lmcf->autos.nelts; i++) {

        if (ngx_http_llm_find_model(lmcf, &au[i]->name) != NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"llm_auto\" \"%V\" has the name of an "
                          "\"llm_model\" in %s:%ui",
                          &au[i]->name, au[i]->file, au[i]->line);
            return NGX_ERROR;
        }

        rule = au[i]->rules.elts;

        for (j = 0; j < au[i]->rules.nelts; j++) {
            rule[j].model = ngx_http_llm_find_model(lmcf, &rule[j].target);

            if (rule[j].model == NULL) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "unknown model \"%V\" in \"llm_auto\" \"%V\" "
                              "in %s:%ui", &rule[j].target, &au[i]->name,
                              rule[j].file, rule[j].line);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


ngx_http_llm_auto_t *
ngx_http_llm_find_auto(ngx_http_llm_main_conf_t *lmcf, ngx_str_t *name)
{
    ngx_uint_t             i;
    ngx_http_llm_auto_t  **au;

    au = lmcf->autos.elts;

    for (i = 0; i < lmcf->autos.nelts; i++) {
        if (au[i]->name.len == name->len
            && ngx_strncmp(au[i]->name.data, name->data, name->len) == 0)
        {
            return au[i];
        }
    }

    return NULL;
}


/* the model the rules pick for this request; NULL on a memory failure */

ngx_http_llm_model_t *
ngx_http_llm_auto_match(ngx_http_request_t *r, ngx_http_llm_auto_t *au,
    ngx_http_llm_ctx_t *ctx)
{
    size_t                     tokens;
    ngx_int_t                  rc;
    ngx_str_t                 *text;
    ngx_uint_t                 i, matched;
    ngx_http_llm_rule_t       *rule;
    ngx_http_llm_auto_input_t  in;

    ngx_memzero(&in, sizeof(ngx_http_llm_auto_input_t));

    if (ctx->has_raw && ctx->api == NGX_HTTP_LLM_API_CHAT) {
        in.raw = &ctx->raw;

    } else {
        in.messages = ngx_http_llm_body_get(ctx, "messages");
    }

    rule = au->rules.elts;

    for (i = 0; i < au->rules.nelts; i++) {

        switch (rule[i].type) {

        case NGX_HTTP_LLM_RULE_PROMPT:
        case NGX_HTTP_LLM_RULE_LAST:
            if (ngx_http_llm_auto_read(r, ctx, &in) != NGX_OK) {
                return NULL;
            }

            text = (rule[i].type == NGX_HTTP_LLM_RULE_PROMPT) ? &in.prompt
                                                              : &in.last;

            rc = ngx_regex_exec(rule[i].regex, text, NULL, 0);

            if (rc < NGX_REGEX_NO_MATCHED) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              ngx_regex_exec_n " failed: %i on \"%V\" rule "
                              "of llm_auto \"%V\"", rc, &rule[i].text,
                              &au->name);
                matched = 0;

            } else {
                matched = (rc >= 0);
            }

            break;

        case NGX_HTTP_LLM_RULE_TOKENS:
            if (ngx_http_llm_auto_read(r, ctx, &in) != NGX_OK) {
                return NULL;
            }

            tokens = in.text_len / 4;

            switch (rule[i].op) {
            case NGX_HTTP_LLM_OP_GT:
                matched = (tokens > rule[i].tokens);
                break;
            case NGX_HTTP_LLM_OP_GE:
                matched = (tokens >= rule[i].tokens);
                break;
            case NGX_HTTP_LLM_OP_LT:
                matched = (tokens < rule[i].tokens);
                break;
            default:
                matched = (tokens <= rule[i].tokens);
                break;
            }

            break;

        case NGX_HTTP_LLM_RULE_TOOLS:
            matched = json_array_size(ngx_http_llm_body_get(ctx, "tools")) > 0
                      || json_array_size(ngx_http_llm_body_get(ctx,
                                                               "functions"))
                         > 0;
            break;

        case NGX_HTTP_LLM_RULE_IMAGES:
            if (ngx_http_llm_auto_read(r, ctx, &in) != NGX_OK) {
                return NULL;
            }
            matched = in.images;
            break;

        default: /* NGX_HTTP_LLM_RULE_DEFAULT */
            matched = 1;
            break;
        }

        if (matched) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "llm: auto \"%V\": rule \"%V\" picks \"%V\"",
                          &au->name, &rule[i].text, &rule[i].model->name);

            return rule[i].model;
        }
    }

    /* unreachable: a block has a default */

    return NULL;
}


static void
ngx_http_llm_auto_scan(ngx_http_llm_auto_input_t *in)
{
    size_t       i;
    json_t      *msg;
    ngx_uint_t   images;

    if (in->scanned) {
        return;
    }

    in->scanned = 1;

    json_array_foreach(in->messages, i, msg) {
        images = 0;

        ngx_http_llm_auto_text(json_object_get(msg, "content"),
                               &in->text_len, &images);

        if (images) {
            in->images = 1;
        }
    }
}


/* the text of all messages, and of the last user message */

static ngx_int_t
ngx_http_llm_auto_join(ngx_http_request_t *r, ngx_http_llm_auto_input_t *in)
{
    u_char      *p;
    size_t       i, j, len;
    json_t      *msg, *content, *part, *t;
    ngx_uint_t   user;

    if (in->joined) {
        return NGX_OK;
    }

    in->joined = 1;

    ngx_http_llm_auto_scan(in);

    p = ngx_pnalloc(r->pool, in->text_len + json_array_size(in->messages)
                             + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    in->prompt.data = p;
    ngx_str_set(&in->last, "");

    json_array_foreach(in->messages, i, msg) {

        content = json_object_get(msg, "content");
        user = ngx_http_llm_dialect_is(json_object_get(msg, "role"), "user");

        if (i) {
            *p++ = '\n';
        }

        if (json_is_string(content)) {
            len = json_string_length(content);

            if (user) {
                in->last.data = p;
                in->last.len = len;
            }

            p = ngx_cpymem(p, json_string_value(content), len);
            continue;
        }

        if (user) {
            in->last.data = p;
        }

        json_array_foreach(content, j, part) {
            t = json_object_get(part, "text");

            if (json_is_string(t)) {
                p = ngx_cpymem(p, json_string_value(t), json_string_length(t));
            }
        }

        if (user) {
            in->last.len = p - in->last.data;
        }
    }

    in->prompt.len = p - in->prompt.data;

    return NGX_OK;
}


static void
ngx_http_llm_auto_text(json_t *content, size_t *len, ngx_uint_t *images)
{
    size_t   i;
    json_t  *part, *t;

    if (json_is_string(content)) {
        *len += json_string_length(content);
        return;
    }

    json_array_foreach(content, i, part) {
        t = json_object_get(part, "text");

        if (json_is_string(t)) {
            *len += json_string_length(t);
        }

        t = json_object_get(part, "type");

        if (ngx_http_llm_dialect_is(t, "image_url")
            || ngx_http_llm_dialect_is(t, "image")
            || ngx_http_llm_dialect_is(t, "input_image"))
        {
            *images = 1;
        }
    }
}


/* what the rules look at, from the client's bytes or else from jansson */

static ngx_int_t
ngx_http_llm_auto_read(ngx_http_request_t *r, ngx_http_llm_ctx_t *ctx,
    ngx_http_llm_auto_input_t *in)
{
    ngx_int_t  rc;

    if (in->joined) {
        return NGX_OK;
    }

    if (in->raw) {
        rc = ngx_http_llm_auto_raw(r, in);

        if (rc != NGX_DECLINED) {
            in->joined = 1;
            in->scanned = 1;
            return rc;
        }

        if (ngx_http_llm_body_full(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_memzero(in, sizeof(ngx_http_llm_auto_input_t));
        in->messages = json_object_get(ctx->body, "messages");
    }

    return ngx_http_llm_auto_join(r, in);
}


/*
 * What ngx_http_llm_auto_scan() and ngx_http_llm_auto_join() find, read
 * from the client's bytes with the scanner, which has checked them: no
 * parse of a conversation that goes on to an OpenAI-dialect provider as
 * it is.  NGX_DECLINED when a message or a part has a key with an escape
 * (jansson decodes keys: "c\u006fntent" is "content"): then jansson reads.
 */

static ngx_int_t
ngx_http_llm_auto_raw(ngx_http_request_t *r, ngx_http_llm_auto_input_t *in)
{
    u_char                 *p, *last, *q, *qlast, *d, *start, *value, type;
    size_t                  len;
    ngx_int_t               rc;
    ngx_uint_t              n, user, escaped;
    ngx_http_llm_member_t   role, content, part, text, ptype;

    /* the text and the separators are never longer than the JSON */

    d = ngx_pnalloc(r->pool, in->raw->value_len + 1);
    if (d == NULL) {
        return NGX_ERROR;
    }

    in->prompt.data = d;
    ngx_str_set(&in->last, "");

    p = in->raw->value;
    last = p + in->raw->value_len;

    for (n = 0;
         ngx_http_llm_scan_next(&p, last, &value, &len, &type) == NGX_OK;
         n++)
    {
        if (n) {
            *d++ = '\n';
        }

        if (type != '{') {
            continue;
        }

        rc = ngx_http_llm_scan_lookup(value, len, "role", &role, &escaped);

        if (escaped) {
            return NGX_DECLINED;
        }

        user = (rc == NGX_OK && ngx_http_llm_auto_is(&role, "user"));

        start = d;

        if (ngx_http_llm_scan_member(value, len, "content", &content)
            != NGX_OK)
        {
            content.type = 'n';
        }

        if (content.type == '"') {
            d = ngx_http_llm_scan_unescape(d, content.value + 1,
                                           content.value_len - 2);

        } else if (content.type == '[') {
            q = content.value;
            qlast = q + content.value_len;

            while (ngx_http_llm_scan_next(&q, qlast, &part.value,
                                          &part.value_len, &part.type)
                   == NGX_OK)
            {
                if (part.type != '{') {
                    continue;
                }

                rc = ngx_http_llm_scan_lookup(part.value, part.value_len,
                                              "text", &text, &escaped);

                if (escaped) {
                    return NGX_DECLINED;
                }

                if (rc == NGX_OK && text.type == '"') {
                    d = ngx_http_llm_scan_unescape(d, text.value + 1,
                                                   text.value_len - 2);
                }

                if (ngx_http_llm_scan_member(part.value, part.value_len,
                                             "type", &ptype)
                    == NGX_OK
                    && (ngx_http_llm_auto_is(&ptype, "image_url")
                        || ngx_http_llm_auto_is(&ptype, "image")
                        || ngx_http_llm_auto_is(&ptype, "input_image")))
                {
                    in->images = 1;
                }
            }
        }

        in->text_len += d - start;

        if (user) {
            in->last.data = start;
            in->last.len = d - start;
        }
    }

    in->prompt.len = d - in->prompt.data;

    return NGX_OK;
}


/* a string member equal to "s", escapes decoded */

static ngx_uint_t
ngx_http_llm_auto_is(ngx_http_llm_member_t *m, const char *s)
{
    u_char  *end, buf[64];
    size_t   len;

    if (m->type != '"') {
        return 0;
    }

    len = ngx_strlen(s);

    if (m->value_len - 2 == len) {
        return ngx_strncmp(m->value + 1, s, len) == 0;
    }

    /* longer: escapes, perhaps; six bytes at most for a decoded one */

    if (m->value_len - 2 > len * 6 || m->value_len - 2 > sizeof(buf)) {
        return 0;
    }

    end = ngx_http_llm_scan_unescape(buf, m->value + 1, m->value_len - 2);

    return (size_t) (end - buf) == len && ngx_strncmp(buf, s, len) == 0;
}