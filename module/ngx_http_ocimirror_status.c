/*
 * The status page (see ngx_http_ocimirror_status.h).
 *
 * GET /status.json asks the fetcher for STATUS, like /metrics asks for
 * STATS, and answers 200 in every case: the workers' counters from the
 * shared zone, then "fetcher": the fetcher's JSON as a file buffer from
 * its BODY file, or null if the fetcher cannot answer.  The page itself
 * is a constant: the browser renders what the JSON says.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_metrics.h"
#include "ngx_http_ocimirror_reply.h"
#include "ngx_http_ocimirror_serve.h"
#include "ngx_http_ocimirror_status.h"


/* the fetcher writes a few kilobytes: more than this is a stuck fetcher */
#define NGX_HTTP_OCIMIRROR_STATUS_TIMEOUT  5000


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_ocimirror_wait_t        wait;
} ngx_http_ocimirror_status_ctx_t;


static ngx_int_t ngx_http_ocimirror_status_page(ngx_http_request_t *r);
static void ngx_http_ocimirror_status_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_status_send(ngx_http_request_t *r,
    const oci_msg_t *m);
static ngx_buf_t *ngx_http_ocimirror_status_counters(ngx_http_request_t *r,
    ngx_uint_t up);
static ngx_int_t ngx_http_ocimirror_status_headers(ngx_http_request_t *r);


/*
 * The page: markup, style and script in one answer.  It polls its own
 * path + ".json", and writes every figure with textContent (never as
 * markup: repository names and upstream messages are other people's
 * words).  The raw numbers are in data-value attributes too.
 */
static const char  ngx_http_ocimirror_status_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1"
    "\">\n"
    "<title>ocimirror status</title>\n"
    "<style>\n"
    "body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #"
    "222; background: #fafafa; }\n"
    "h1 { font-size: 1.4em; margin: 0 0 .2em; }\n"
    "h2 { font-size: 1.1em; margin: 1.2em 0 .4em; border-bottom: 1px solid "
    "#ccc; }\n"
    "table { border-collapse: collapse; width: 100%; }\n"
    "th, td { text-align: left; padding: .2em .6em; border-bottom: 1px soli"
    "d #e4e4e4; white-space: nowrap; }\n"
    "td.num, th.num { text-align: right; font-variant-numeric: tabular-nums"
    "; }\n"
    "progress { width: 12em; height: 1em; }\n"
    ".muted { color: #777; }\n"
    ".bad { color: #b00; font-weight: bold; }\n"
    ".warn { color: #a60; font-weight: bold; }\n"
    ".good { color: #070; font-weight: bold; }\n"
    ".figures { display: flex; flex-wrap: wrap; gap: 1em; }\n"
    ".figure { background: #fff; border: 1px solid #ddd; border-radius: 4px"
    "; padding: .5em 1em; min-width: 10em; }\n"
    ".figure b { display: block; font-size: 1.4em; }\n"
    "#disk { position: relative; height: 1.4em; background: #e8e8e8; border"
    ": 1px solid #bbb; max-width: 40em; }\n"
    "#disk-used { position: absolute; left: 0; top: 0; bottom: 0; backgroun"
    "d: #4a8; }\n"
    ".mark { position: absolute; top: -3px; bottom: -3px; width: 2px; }\n"
    "#disk-high { background: #c33; }\n"
    "#disk-low { background: #36c; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<h1>ocimirror</h1>\n"
    "<div class=\"muted\">updated <span id=\"updated\">never</span>; the fe"
    "tcher is\n"
    "<span id=\"fetcher-state\">unknown</span></div>\n"
    "\n"
    "<h2>Downloads in flight (<span id=\"downloads-count\">0</span>)</h2>\n"
    "<table>\n"
    "<thead><tr><th>registry</th><th>repository</th><th>digest</th>\n"
    "<th>progress</th><th class=\"num\">bytes</th><th class=\"num\">rate</t"
    "h>\n"
    "<th class=\"num\">waiting</th><th class=\"num\">ETA</th></tr></thead>"
    "\n"
    "<tbody id=\"downloads\"></tbody>\n"
    "</table>\n"
    "<div id=\"downloads-more\" class=\"muted\"></div>\n"
    "\n"
    "<h2>Store</h2>\n"
    "<div id=\"disk\"><div id=\"disk-used\"></div><div class=\"mark\" id=\""
    "disk-low\"\n"
    "title=\"low watermark\"></div><div class=\"mark\" id=\"disk-high\"\n"
    "title=\"high watermark\"></div></div>\n"
    "<p><span id=\"store-bytes\" data-value=\"\">-</span> used of\n"
    "<span id=\"store-max\" data-value=\"\">-</span>\n"
    "(<span id=\"store-percent\">-</span>), <span id=\"store-files\"\n"
    "data-value=\"\">-</span> files; watermarks: high\n"
    "<span id=\"store-high\" data-value=\"\">-</span>, low\n"
    "<span id=\"store-low\" data-value=\"\">-</span>; reserved for download"
    "s\n"
    "<span id=\"store-reserved\" data-value=\"\">-</span>; filesystem free"
    "\n"
    "<span id=\"store-free\" data-value=\"\">-</span></p>\n"
    "\n"
    "<h2>Traffic</h2>\n"
    "<div class=\"figures\">\n"
    "<div class=\"figure\">hit ratio<b id=\"hit-ratio\" data-value=\"\">-</"
    "b>\n"
    "<span class=\"muted\">hits <span id=\"hits\" data-value=\"\">-</span>,"
    "\n"
    "misses <span id=\"misses\" data-value=\"\">-</span></span></div>\n"
    "<div class=\"figure\">served<b id=\"sent-bytes\" data-value=\"\">-</b>"
    "</div>\n"
    "<div class=\"figure\">from upstream<b id=\"upstream-bytes\" data-value"
    "=\"\">-</b></div>\n"
    "<div class=\"figure\">WAN traffic saved<b id=\"saved-bytes\" data-valu"
    "e=\"\">-</b></div>\n"
    "</div>\n"
    "\n"
    "<h2>Upstream endpoints</h2>\n"
    "<table>\n"
    "<thead><tr><th>registry</th><th>endpoint</th><th>state</th>\n"
    "<th class=\"num\">requests</th><th class=\"num\">failures</th>\n"
    "<th class=\"num\">429s</th><th class=\"num\">round trip</th></tr></the"
    "ad>\n"
    "<tbody id=\"endpoints\"></tbody>\n"
    "</table>\n"
    "\n"
    "<h2>Last errors (<span id=\"errors-count\">0</span>)</h2>\n"
    "<table>\n"
    "<thead><tr><th>when</th><th>status</th><th>what</th><th>message</th></"
    "tr></thead>\n"
    "<tbody id=\"errors\"></tbody>\n"
    "</table>\n"
    "\n"
    "<script>\n"
    "\"use strict\";\n"
    "var source = location.pathname.replace(/\\/+$/, \"\") + \".json\";\n"
    "\n"
    "function size(n) {\n"
    "  var units = [\"B\", \"KiB\", \"MiB\", \"GiB\", \"TiB\", \"PiB\"], i "
    "= 0;\n"
    "  if (n === null || n === undefined || n < 0) { return \"?\"; }\n"
    "  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }\n"
    "  return (i === 0 ? n : n.toFixed(1)) + \" \" + units[i];\n"
    "}\n"
    "\n"
    "function duration(s) {\n"
    "  if (s === null || s === undefined) { return \"?\"; }\n"
    "  if (s < 60) { return s + \" s\"; }\n"
    "  if (s < 3600) { return Math.floor(s / 60) + \" min \" + (s % 60) + "
    "\" s\"; }\n"
    "  return Math.floor(s / 3600) + \" h \" + Math.floor(s % 3600 / 60) + "
    "\" min\";\n"
    "}\n"
    "\n"
    "function set(id, text, value) {\n"
    "  var e = document.getElementById(id);\n"
    "  e.textContent = text;\n"
    "  if (value !== undefined) {\n"
    "    e.setAttribute(\"data-value\", value === null ? \"\" : String(valu"
    "e));\n"
    "  }\n"
    "}\n"
    "\n"
    "function cell(tr, text, cls) {\n"
    "  var td = document.createElement(\"td\");\n"
    "  td.textContent = text;\n"
    "  if (cls) { td.className = cls; }\n"
    "  tr.appendChild(td);\n"
    "  return td;\n"
    "}\n"
    "\n"
    "function fill(id, rows, make) {\n"
    "  var body = document.getElementById(id), i;\n"
    "  while (body.firstChild) { body.removeChild(body.firstChild); }\n"
    "  for (i = 0; i < rows.length; i++) { body.appendChild(make(rows[i]));"
    " }\n"
    "}\n"
    "\n"
    "function download(d) {\n"
    "  var tr = document.createElement(\"tr\"), bar, td;\n"
    "  tr.className = \"download\";\n"
    "  tr.setAttribute(\"data-digest\", d.digest);\n"
    "  cell(tr, d.registry);\n"
    "  cell(tr, d.repository);\n"
    "  cell(tr, d.digest.replace(/^sha256:/, \"\").substring(0, 12)).title "
    "= d.digest;\n"
    "  td = cell(tr, \"\");\n"
    "  bar = document.createElement(\"progress\");\n"
    "  bar.className = \"bar\";\n"
    "  if (d.total > 0) { bar.max = d.total; bar.value = d.bytes; }\n"
    "  bar.setAttribute(\"data-bytes\", String(d.bytes));\n"
    "  td.appendChild(bar);\n"
    "  cell(tr, size(d.bytes) + \" of \" + size(d.total), \"num\");\n"
    "  cell(tr, size(d.rate) + \"/s\", \"num\");\n"
    "  cell(tr, String(d.waiters) + (d.prefetch ? \" (prefetch)\" : \"\"), "
    "\"num\");\n"
    "  cell(tr, duration(d.eta), \"num\");\n"
    "  return tr;\n"
    "}\n"
    "\n"
    "function endpoints(regs) {\n"
    "  var rows = [], i, k;\n"
    "  for (i = 0; i < regs.length; i++) {\n"
    "    for (k = 0; k < regs[i].endpoints.length; k++) {\n"
    "      rows.push([regs[i].name, regs[i].endpoints[k]]);\n"
    "    }\n"
    "  }\n"
    "  return rows;\n"
    "}\n"
    "\n"
    "function endpoint(row) {\n"
    "  var tr = document.createElement(\"tr\"), e = row[1];\n"
    "  tr.className = \"endpoint\";\n"
    "  cell(tr, row[0]);\n"
    "  cell(tr, e.url);\n"
    "  cell(tr, e.state, e.state === \"up\" ? \"good\"\n"
    "                    : (e.state === \"throttled\" ? \"warn\" : \"bad\")"
    ");\n"
    "  cell(tr, String(e.requests), \"num\");\n"
    "  cell(tr, String(e.failures), \"num\");\n"
    "  cell(tr, String(e.throttled), \"num\");\n"
    "  cell(tr, e.rtt_ms === null ? \"?\" : e.rtt_ms.toFixed(1) + \" ms\", "
    "\"num\");\n"
    "  return tr;\n"
    "}\n"
    "\n"
    "function error(e) {\n"
    "  var tr = document.createElement(\"tr\");\n"
    "  tr.className = \"error\";\n"
    "  cell(tr, new Date(e.time * 1000).toLocaleTimeString());\n"
    "  cell(tr, e.status === 0 ? \"failover\" : String(e.status));\n"
    "  cell(tr, e.what);\n"
    "  cell(tr, e.message);\n"
    "  return tr;\n"
    "}\n"
    "\n"
    "function render(s) {\n"
    "  var n = s.nginx, f = s.fetcher, st, pct, upstream, ratio;\n"
    "\n"
    "  set(\"hits\", String(n.hits), n.hits);\n"
    "  set(\"misses\", String(n.misses), n.misses);\n"
    "  ratio = n.hits + n.misses > 0 ? n.hits / (n.hits + n.misses) : null;"
    "\n"
    "  set(\"hit-ratio\", ratio === null ? \"-\" : (100 * ratio).toFixed(1)"
    " + \" %\",\n"
    "      ratio === null ? null : ratio.toFixed(4));\n"
    "  set(\"sent-bytes\", size(n.sent_bytes), n.sent_bytes);\n"
    "  set(\"fetcher-state\", s.fetcher_up ? \"up\" : \"down (no answer)\")"
    ";\n"
    "  document.getElementById(\"fetcher-state\").className =\n"
    "      s.fetcher_up ? \"good\" : \"bad\";\n"
    "  set(\"updated\", new Date().toLocaleTimeString());\n"
    "\n"
    "  if (!f) { return; }\n"
    "\n"
    "  upstream = f.upstream_bytes;\n"
    "  set(\"upstream-bytes\", size(upstream), upstream);\n"
    "  set(\"saved-bytes\", size(Math.max(0, n.sent_bytes - upstream)),\n"
    "      Math.max(0, n.sent_bytes - upstream));\n"
    "\n"
    "  set(\"downloads-count\", String(f.downloads_in_flight));\n"
    "  fill(\"downloads\", f.downloads, download);\n"
    "  set(\"downloads-more\", f.downloads_in_flight > f.downloads.length\n"
    "      ? (f.downloads_in_flight - f.downloads.length) + \" more not lis"
    "ted\"\n"
    "      : \"\");\n"
    "\n"
    "  st = f.store;\n"
    "  set(\"store-bytes\", size(st.bytes), st.bytes);\n"
    "  set(\"store-max\", size(st.max), st.max);\n"
    "  set(\"store-files\", String(st.files), st.files);\n"
    "  set(\"store-high\", size(st.high), st.high);\n"
    "  set(\"store-low\", size(st.low), st.low);\n"
    "  set(\"store-reserved\", size(st.reserved), st.reserved);\n"
    "  set(\"store-free\", size(st.fs_free), st.fs_free);\n"
    "  pct = st.max > 0 ? Math.min(100, 100 * st.bytes / st.max) : 0;\n"
    "  set(\"store-percent\", pct.toFixed(1) + \" %\");\n"
    "  document.getElementById(\"disk-used\").style.width = pct + \"%\";\n"
    "  if (st.max > 0) {\n"
    "    document.getElementById(\"disk-high\").style.left =\n"
    "        (100 * st.high / st.max) + \"%\";\n"
    "    document.getElementById(\"disk-low\").style.left =\n"
    "        (100 * st.low / st.max) + \"%\";\n"
    "  }\n"
    "\n"
    "  fill(\"endpoints\", endpoints(f.registries), endpoint);\n"
    "  set(\"errors-count\", String(f.errors.length));\n"
    "  fill(\"errors\", f.errors, error);\n"
    "}\n"
    "\n"
    "function poll() {\n"
    "  var x = new XMLHttpRequest();\n"
    "  x.open(\"GET\", source);\n"
    "  x.timeout = 5000;\n"
    "  x.onload = function () {\n"
    "    if (x.status === 200) {\n"
    "      try {\n"
    "        render(JSON.parse(x.responseText));\n"
    "      } catch (e) {\n"
    "        set(\"updated\", \"never: \" + e);\n"
    "      }\n"
    "    }\n"
    "    setTimeout(poll, 1000);\n"
    "  };\n"
    "  x.onerror = x.ontimeout = function () {\n"
    "    set(\"fetcher-state\", \"unknown (the mirror did not answer)\");\n"
    "    setTimeout(poll, 2000);\n"
    "  };\n"
    "  x.send();\n"
    "}\n"
    "\n"
    "poll();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";


/* what the page may load: nothing but itself and its JSON */
static ngx_str_t  ngx_http_ocimirror_status_csp = ngx_string(
    "default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'; img-src data:");


ngx_int_t
ngx_http_ocimirror_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    oci_msg_t                          m;
    ngx_http_ocimirror_main_conf_t    *mcf;
    ngx_http_ocimirror_status_ctx_t   *ctx;

    rc = ngx_http_ocimirror_read_only(r, "the status is read-only");

    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->uri.len < sizeof(".json") - 1
        || ngx_strncmp(r->uri.data + r->uri.len - (sizeof(".json") - 1),
                       ".json", sizeof(".json") - 1) != 0)
    {
        return ngx_http_ocimirror_status_page(r);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_status_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    oci_msg_init(&m, OCI_MSG_STATUS, 0);

    rc = ngx_http_ocimirror_ask(r, mcf->link, &ctx->wait,
                                ngx_http_ocimirror_status_message, ctx,
                                NGX_HTTP_OCIMIRROR_STATUS_TIMEOUT, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_ocimirror_status_send(r, NULL);
}


static ngx_int_t
ngx_http_ocimirror_status_page(ngx_http_request_t *r)
{
    ngx_str_t  body;

    static ngx_str_t  type = ngx_string("text/html; charset=utf-8");

    if (ngx_http_ocimirror_status_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = (u_char *) ngx_http_ocimirror_status_html;
    body.len = sizeof(ngx_http_ocimirror_status_html) - 1;

    return ngx_http_ocimirror_send_body(r, NGX_HTTP_OK, &type, &body);
}


static void
ngx_http_ocimirror_status_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_http_request_t               *r;
    ngx_http_ocimirror_status_ctx_t  *ctx;

    if (w->active) {
        /* no answer yet, the fetcher is at work */
        return;
    }

    ctx = w->data;
    r = ctx->request;

    m = ngx_http_ocimirror_body_answer(w, m, r->connection->log, "status",
                                       "STATUS");

    ngx_http_finalize_request(r, ngx_http_ocimirror_status_send(r, m));
}


/* The JSON: the workers' counters, then the fetcher's BODY file m (NULL:
 * the fetcher did not answer, "fetcher": null), then the closing brace. */

static ngx_int_t
ngx_http_ocimirror_status_send(ngx_http_request_t *r, const oci_msg_t *m)
{
    off_t         size;
    ngx_fd_t      fd;
    ngx_int_t     rc;
    ngx_buf_t    *b, *fb, *end;
    ngx_str_t     path;
    ngx_uint_t    up;
    ngx_chain_t   out[3];

    static ngx_str_t  type = ngx_string("application/json");
    static u_char     null_end[] = "null}\n";

    up = 0;
    size = 0;
    fd = NGX_INVALID_FILE;

    if (m != NULL
        && ngx_http_ocimirror_open_body(r, m->path, "fetcher's status",
                                        &path, &fd, &size)
           == NGX_OK
        && size > 0)
    {
        up = 1;
    }

    b = ngx_http_ocimirror_status_counters(r, up);
    if (b == NULL) {
        return NGX_ERROR;
    }

    end = ngx_calloc_buf(r->pool);
    if (end == NULL) {
        return NGX_ERROR;
    }

    /* "null}\n" without the fetcher's object, "}\n" after it */
    end->pos = up ? null_end + 4 : null_end;
    end->last = null_end + sizeof(null_end) - 1;
    end->memory = 1;
    end->last_buf = (r == r->main) ? 1 : 0;
    end->last_in_chain = 1;

    fb = NULL;

    if (up) {
        fb = ngx_http_ocimirror_file_buf(r, fd, &path, size);
        if (fb == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_ocimirror_status_headers(r) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = (b->last - b->pos) + (up ? size : 0)
                                      + (end->last - end->pos);
    r->headers_out.content_type = type;
    r->headers_out.content_type_len = type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out[0].buf = b;
    out[0].next = &out[1];

    if (fb != NULL) {
        out[1].buf = fb;
        out[1].next = &out[2];
        out[2].buf = end;
        out[2].next = NULL;

    } else {
        out[1].buf = end;
        out[1].next = NULL;
    }

    return ngx_http_output_filter(r, &out[0]);
}


/*
 * The workers' part: hits and misses of blobs and manifests (what the
 * store can answer; the base endpoint, tags and referrers are left out of
 * the hit ratio), the bytes served, the responses by class.
 */

static ngx_buf_t *
ngx_http_ocimirror_status_counters(ngx_http_request_t *r, ngx_uint_t up)
{
    ngx_buf_t          *b;
    ngx_atomic_uint_t   c[NGX_HTTP_OCIMIRROR_COUNTERS];
    ngx_uint_t          i;

    for (i = 0; i < NGX_HTTP_OCIMIRROR_COUNTERS; i++) {
        c[i] = ngx_http_ocimirror_metrics_value(r, i);
    }

    b = ngx_create_temp_buf(r->pool, 512 + 14 * NGX_ATOMIC_T_LEN);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_sprintf(b->last,
        "{\"nginx\":{\"hits\":%uA,\"misses\":%uA,"
        "\"blob\":{\"hit\":%uA,\"miss\":%uA},"
        "\"manifest\":{\"hit\":%uA,\"miss\":%uA},"
        "\"sent_bytes\":%uA,\"stale_served\":%uA,"
        "\"responses\":{\"1xx\":%uA,\"2xx\":%uA,\"3xx\":%uA,"
        "\"4xx\":%uA,\"5xx\":%uA}},"
        "\"fetcher_up\":%s,\"fetcher\":",
        c[NGX_HTTP_OCIMIRROR_HIT_BLOB] + c[NGX_HTTP_OCIMIRROR_HIT_MANIFEST],
        c[NGX_HTTP_OCIMIRROR_MISS_BLOB]
        + c[NGX_HTTP_OCIMIRROR_MISS_MANIFEST],
        c[NGX_HTTP_OCIMIRROR_HIT_BLOB], c[NGX_HTTP_OCIMIRROR_MISS_BLOB],
        c[NGX_HTTP_OCIMIRROR_HIT_MANIFEST],
        c[NGX_HTTP_OCIMIRROR_MISS_MANIFEST],
        c[NGX_HTTP_OCIMIRROR_SENT_BYTES],
        c[NGX_HTTP_OCIMIRROR_STALE_FETCHER]
        + c[NGX_HTTP_OCIMIRROR_STALE_CACHE],
        c[NGX_HTTP_OCIMIRROR_RESPONSES_1XX],
        c[NGX_HTTP_OCIMIRROR_RESPONSES_2XX],
        c[NGX_HTTP_OCIMIRROR_RESPONSES_3XX],
        c[NGX_HTTP_OCIMIRROR_RESPONSES_4XX],
        c[NGX_HTTP_OCIMIRROR_RESPONSES_5XX],
        up ? "true" : "false");

    return b;
}


/* Not to be kept (the figures are "now"), and nothing loaded from
 * elsewhere. */

static ngx_int_t
ngx_http_ocimirror_status_headers(ngx_http_request_t *r)
{
    static ngx_str_t  no_store = ngx_string("no-store");

    if (ngx_http_ocimirror_add_header(r, "Cache-Control", &no_store)
        != NGX_OK
        || ngx_http_ocimirror_add_header(r, "Content-Security-Policy",
                                         &ngx_http_ocimirror_status_csp)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
