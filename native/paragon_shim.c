/*
 * The native half of `core.paragon`: a thin VapourSynth plugin that owns the
 * `paragon` namespace and hands every `Upscale` call to Python.
 *
 * VapourSynth creates namespaces only for native libraries, so this file exists
 * to make `core.paragon.Upscale(clip, ...)` work in a `.vpy` with no import and
 * no LoadPlugin. It holds no logic of its own. One call goes like this:
 *
 *   Upscale(in, out)                 C: parks `in` under a fresh token
 *     -> vsparagon.plugin._bridge.create(token)             Python, with the GIL
 *          -> core.paragon.Fetch_(token)    C: copies the parked `in` to Python
 *          -> vsparagon.plugin.upscale(clip, **kwargs)      builds the clip
 *          -> core.paragon.Bind_(clip, token)   C: parks the result node
 *   Upscale moves the parked node into `out`, or turns the Python exception
 *   into mapSetError.
 *
 * Going back through VapourSynth's own Python module to convert the arguments
 * (instead of building Python objects here) keeps node wrapping and type
 * conversion where VapourSynth already does it right.
 *
 * The library does not link libpython: it is loaded by `python` and by
 * `vspipe`, which loads libpython itself, so the few Python functions it needs
 * are looked up at run time. All of them are in the stable ABI (3.12+).
 * Linux only for now (dl_iterate_phdr).
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "VapourSynth4.h"

#define PREFIX "paragon.Upscale: "

/* ---- Python, resolved at run time ---------------------------------------- */

typedef struct PyObject PyObject; /* opaque: only passed back to Python */
typedef int PyGILState_STATE;     /* an enum in Python.h */
typedef ptrdiff_t Py_ssize_t;

static struct {
    int ok; /* every symbol below was found */
    int (*IsInitialized)(void);
    PyGILState_STATE (*GILState_Ensure)(void);
    void (*GILState_Release)(PyGILState_STATE);
    PyObject *(*Import_ImportModule)(const char *);
    PyObject *(*Object_CallMethod)(PyObject *, const char *, const char *, ...);
    PyObject *(*Err_GetRaisedException)(void);
    void (*Err_Clear)(void);
    PyObject *(*Object_Str)(PyObject *);
    const char *(*Unicode_AsUTF8AndSize)(PyObject *, Py_ssize_t *);
    void (*DecRef)(PyObject *);
} py;

static pthread_once_t py_once = PTHREAD_ONCE_INIT;

/* dl_iterate_phdr callback: open the libpython already in the process, if any. */
static int find_libpython(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    const char *name = info->dlpi_name;
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : name;
    if (!base || strncmp(base, "libpython3", 10) != 0)
        return 0;
    /* RTLD_NOLOAD: only a handle to what is loaded, never a second Python. */
    *(void **)data = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
    return *(void **)data != NULL;
}

static void *python_symbol(void *libpython, const char *name) {
    /* `python` exports its symbols globally; vspipe's libvsscript may load
       libpython privately (RTLD_LOCAL), hence the fallback handle. */
    void *symbol = dlsym(RTLD_DEFAULT, name);
    if (!symbol && libpython)
        symbol = dlsym(libpython, name);
    return symbol;
}

static void resolve_python(void) {
    void *libpython = NULL;
    if (!dlsym(RTLD_DEFAULT, "Py_IsInitialized"))
        dl_iterate_phdr(find_libpython, &libpython);

#define RESOLVE(field, name) \
    if (!(*(void **)&py.field = python_symbol(libpython, name))) return
    RESOLVE(IsInitialized, "Py_IsInitialized");
    RESOLVE(GILState_Ensure, "PyGILState_Ensure");
    RESOLVE(GILState_Release, "PyGILState_Release");
    RESOLVE(Import_ImportModule, "PyImport_ImportModule");
    RESOLVE(Object_CallMethod, "PyObject_CallMethod");
    RESOLVE(Err_GetRaisedException, "PyErr_GetRaisedException");
    RESOLVE(Err_Clear, "PyErr_Clear");
    RESOLVE(Object_Str, "PyObject_Str");
    RESOLVE(Unicode_AsUTF8AndSize, "PyUnicode_AsUTF8AndSize");
    RESOLVE(DecRef, "Py_DecRef");
#undef RESOLVE
    py.ok = 1;
}

static int python_available(void) {
    pthread_once(&py_once, resolve_python);
    return py.ok && py.IsInitialized();
}

/* ---- Calls in flight ------------------------------------------------------ */

/* One running Upscale call. It lives on the Upscale caller's stack and is in
   the list only while that caller waits for Python. */
typedef struct Call {
    int64_t token;
    VSCore *core;
    const VSMap *args;  /* the caller's `in`, valid until Upscale returns */
    VSNode *result;     /* set by Bind_, one reference owned by this call */
    struct Call *next;
} Call;

/* Guards `calls` and every Call's `result`. Never held while calling into
   Python or while freeing a node (a free can run arbitrary filter code). */
static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;
static Call *calls = NULL;
static int64_t next_token = 1;

static void add_call(Call *call) {
    pthread_mutex_lock(&calls_lock);
    call->token = next_token++;
    call->next = calls;
    calls = call;
    pthread_mutex_unlock(&calls_lock);
}

static void remove_call(Call *call) {
    pthread_mutex_lock(&calls_lock);
    for (Call **link = &calls; *link; link = &(*link)->next) {
        if (*link == call) {
            *link = call->next;
            break;
        }
    }
    pthread_mutex_unlock(&calls_lock);
}

/* Caller holds calls_lock. */
static Call *find_call(int64_t token) {
    for (Call *call = calls; call; call = call->next)
        if (call->token == token)
            return call;
    return NULL;
}

/* ---- Python side of one call ---------------------------------------------- */

/* Runs _bridge.create(token) with the GIL held. Returns NULL on success or a
   malloc'd error message that starts with PREFIX. */
static char *run_bridge(int64_t token) {
    char *error = NULL;
    PyObject *bridge = py.Import_ImportModule("vsparagon.plugin._bridge");
    PyObject *result = bridge ? py.Object_CallMethod(bridge, "create", "L", (long long)token) : NULL;
    if (!result) {
        const char *message = "unknown error in the Python side";
        PyObject *exception = py.Err_GetRaisedException();
        PyObject *text = exception ? py.Object_Str(exception) : NULL;
        const char *utf8 = text ? py.Unicode_AsUTF8AndSize(text, NULL) : NULL;
        if (utf8)
            message = utf8;
        py.Err_Clear(); /* a failure inside Str/AsUTF8 must not leak out */

        /* The bridge prefixes its messages; an import failure is not. */
        int prefixed = strncmp(message, PREFIX, strlen(PREFIX)) == 0;
        size_t size = strlen(message) + (prefixed ? 0 : strlen(PREFIX)) + 1;
        error = malloc(size);
        if (error)
            snprintf(error, size, "%s%s", prefixed ? "" : PREFIX, message);
        if (text)
            py.DecRef(text);
        if (exception)
            py.DecRef(exception);
    }
    if (result)
        py.DecRef(result);
    if (bridge)
        py.DecRef(bridge);
    return error;
}

/* ---- The registered functions --------------------------------------------- */

static void VS_CC upscale(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    (void)user_data;
    if (!python_available()) {
        vsapi->mapSetError(out, PREFIX "needs VapourSynth's Python environment (vspipe or a Python script)");
        return;
    }

    Call call = {.core = core, .args = in};
    add_call(&call);
    PyGILState_STATE gil = py.GILState_Ensure();
    char *error = run_bridge(call.token);
    py.GILState_Release(gil);
    remove_call(&call); /* from here on, nobody else can touch call.result */

    if (error || !call.result) {
        if (call.result)
            vsapi->freeNode(call.result);
        vsapi->mapSetError(out, error ? error : PREFIX "internal error: the Python side returned no clip");
        free(error);
        return;
    }
    vsapi->mapConsumeNode(out, "clip", call.result, maReplace);
}

/* Fetch_(token): the arguments of running call `token`, as Upscale got them. */
static void VS_CC fetch(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    (void)user_data;
    int64_t token = vsapi->mapGetInt(in, "token", 0, NULL);
    const char *error = NULL;
    pthread_mutex_lock(&calls_lock);
    Call *call = find_call(token);
    if (!call)
        error = PREFIX "internal error: no running call has this token";
    else if (call->core != core)
        error = PREFIX "internal error: the arguments were fetched through another core";
    else
        vsapi->copyMap(call->args, out); /* adds references; frees nothing */
    pthread_mutex_unlock(&calls_lock);  /* `call` may be gone from here on */
    if (error)
        vsapi->mapSetError(out, error);
}

/* Bind_(clip, token): the result of running call `token`. */
static void VS_CC bind(const VSMap *in, VSMap *out, void *user_data, VSCore *core, const VSAPI *vsapi) {
    (void)user_data;
    (void)core;
    int64_t token = vsapi->mapGetInt(in, "token", 0, NULL);
    VSNode *node = vsapi->mapGetNode(in, "clip", 0, NULL);
    VSNode *replaced = NULL;
    pthread_mutex_lock(&calls_lock);
    Call *call = find_call(token);
    if (call) {
        replaced = call->result;
        call->result = node;
        node = NULL;
    }
    pthread_mutex_unlock(&calls_lock);
    if (replaced)
        vsapi->freeNode(replaced);
    if (node) {
        vsapi->freeNode(node);
        vsapi->mapSetError(out, PREFIX "internal error: no running call has this token");
    }
}

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin("com.vsparagon.paragon", "paragon", "ParagonSR super-resolution (vsparagon)",
                         VS_MAKE_VERSION(1, 0), VAPOURSYNTH_API_VERSION, 0, plugin);
    vspapi->registerFunction("Upscale",
                             "clip:vnode;variant:data:opt;scale:int:opt;model:data:opt;backend:data:opt;"
                             "tile:int[]:opt;overlap:int:opt;fp16:int:opt;threads:int:opt;device:int:opt;join:data:opt;"
                             "precision:data:opt;num_streams:int:opt;",
                             "clip:vnode;", upscale, NULL, plugin);
    /* Internal: only vsparagon.plugin._bridge calls these. VapourSynth rejects
       names with a leading underscore, so the trailing one marks them. */
    vspapi->registerFunction("Fetch_", "token:int;", "any", fetch, NULL, plugin);
    vspapi->registerFunction("Bind_", "clip:vnode;token:int;", "", bind, NULL, plugin);
}
