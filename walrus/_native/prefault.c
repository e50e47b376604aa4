/* A prefaulter thread that never takes the GIL (walrus/_prefault.py, NativePrefaulter; the
default where this extension is built).

The Python prefaulter thread needs the GIL to wake up; a writer appending from a tight loop
through the C hot path keeps it for tens of milliseconds, and then faults every page in
itself. This thread is a plain pthread: the writer's slow path (under the GIL and the append
lock) hands it a mapping (``map``) and a target (``cue``: where the writer is, how far ahead
to fault in), and signals a condition variable; the thread faults the pages in with
madvise(MADV_POPULATE_WRITE) in chunks, never touching a Python object.

Safety: the thread reads the mapping's address under ``mu`` and marks it ``populating``
before it drops ``mu`` for the madvise. Unmapping waits for that mark to clear: every close
of a mapped segment calls ``retire(view)`` first (backends/_mmap.py, under the GIL), which
forgets the mapping and waits on ``cond`` (the thread never needs the GIL, so waiting with
the GIL held cannot deadlock); and the object keeps a reference to each mmap it was given
(the current one and the one before), so a garbage-collected mmap cannot unmap either; it
drops them only once no chunk of them is in flight (map, retire, and stop, which another
stop may be joining the thread for). A chunk is at most CHUNK bytes, and a retired mapping
is no longer the thread's, so a retire waits for one chunk at most.

Fork: pthread_atfork holds every instance's ``mu`` across the fork; the child re-makes the
locks and marks its copies stopped (the thread does not exist there).
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHUNK ((size_t)256 << 10)

typedef struct Slot {
    PyObject *view;  /* a strong reference: the mmap cannot be deallocated (unmapped) */
    char *base;
    size_t len;
} Slot;

typedef struct Prefaulter {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* the thread waits here for work */
    pthread_cond_t idle;   /* retire/map wait here for a chunk in flight */
    pthread_t thread;
    int running;           /* a thread was started and not joined */
    int stopping;
    Slot cur, prev;
    size_t ready;          /* pages of cur below this are faulted in */
    size_t target;         /* ... and should be, up to here */
    PyObject *populating;  /* the view a chunk is being faulted in of, or NULL */
    unsigned long long chunks, failures, wakes;
    struct Prefaulter *next, *prevlink;  /* every live instance, for fork and retire */
} Prefaulter;

static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static Prefaulter *all = NULL;

static void *run(void *arg) {
    Prefaulter *self = (Prefaulter *)arg;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    pthread_mutex_lock(&self->mu);
    while (!self->stopping) {
        if (self->cur.base != NULL && self->ready < self->target) {
            size_t start = self->ready & ~(page - 1);
            size_t end = self->target < start + CHUNK ? self->target : start + CHUNK;
            char *base = self->cur.base;
            PyObject *view = self->cur.view;
            self->populating = view;
            pthread_mutex_unlock(&self->mu);
            int rc = madvise(base + start, end - start, MADV_POPULATE_WRITE);
            pthread_mutex_lock(&self->mu);
            self->populating = NULL;
            pthread_cond_broadcast(&self->idle);
            self->chunks++;
            if (rc != 0) {  /* an old kernel (EINVAL): stop trying on this mapping */
                self->failures++;
                if (self->cur.view == view) self->ready = self->target = self->cur.len;
            } else if (self->cur.view == view && self->ready < end) {
                self->ready = end;
            }
            continue;
        }
        pthread_cond_wait(&self->wake, &self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* Under mu: wait until no chunk of ``view`` is in flight. */
static void wait_idle(Prefaulter *self, PyObject *view) {
    while (view != NULL && self->populating == view) pthread_cond_wait(&self->idle, &self->mu);
}

static PyObject *new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (!PyArg_ParseTuple(args, ":Prefaulter")) return NULL;
    Prefaulter *self = (Prefaulter *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->idle, NULL);
    pthread_mutex_lock(&all_mu);
    self->next = all;
    if (all != NULL) all->prevlink = self;
    all = self;
    pthread_mutex_unlock(&all_mu);
    int err = pthread_create(&self->thread, NULL, run, self);
    if (err != 0) {
        Py_DECREF(self);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->running = 1;
    /* Named here, not by the thread itself: named as the Python thread is, from the moment it
    exists (a thread that names itself is anonymous until it first runs). */
    pthread_setname_np(self->thread, "walrus-prefault");
    return (PyObject *)self;
}

static void join(Prefaulter *self) {
    pthread_mutex_lock(&self->mu);
    self->stopping = 1;
    pthread_cond_signal(&self->wake);
    int running = self->running;
    self->running = 0;
    pthread_mutex_unlock(&self->mu);
    if (running) {
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
    }
}

static void dealloc(Prefaulter *self) {
    join(self);
    pthread_mutex_lock(&all_mu);
    if (self->prevlink != NULL) self->prevlink->next = self->next;
    else if (all == self) all = self->next;
    if (self->next != NULL) self->next->prevlink = self->prevlink;
    pthread_mutex_unlock(&all_mu);
    Py_CLEAR(self->cur.view);
    Py_CLEAR(self->prev.view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *stop(Prefaulter *self, PyObject *unused) {
    join(self);
    pthread_mutex_lock(&self->mu);
    /* Another stop() may be the one joining (it let the GIL go): the thread can still be in
    its last chunk, and the references dropped below may be the mappings' last ones. */
    while (self->populating != NULL) pthread_cond_wait(&self->idle, &self->mu);
    PyObject *a = self->cur.view, *b = self->prev.view;
    self->cur = (Slot){0};
    self->prev = (Slot){0};
    pthread_mutex_unlock(&self->mu);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_RETURN_NONE;
}

static PyObject *map(Prefaulter *self, PyObject *view) {
    /* map(view): from now on fault in pages of this writable mapping (a new active segment). */
    Py_buffer buf;
    if (PyObject_GetBuffer(view, &buf, PyBUF_WRITABLE) < 0) return NULL;
    char *base = buf.buf;
    size_t len = (size_t)buf.len;
    PyBuffer_Release(&buf);  /* not pinned: close() must still work; retire() guards it */
    Py_INCREF(view);
    pthread_mutex_lock(&self->mu);
    wait_idle(self, self->prev.view);  /* rare: the thread is still a segment behind */
    PyObject *dropped = self->prev.view;
    self->prev = self->cur;
    self->cur = (Slot){view, base, len};
    self->ready = self->target = 0;
    pthread_mutex_unlock(&self->mu);
    Py_XDECREF(dropped);
    Py_RETURN_NONE;
}

static PyObject *cue(Prefaulter *self, PyObject *const *args, Py_ssize_t nargs) {
    /* cue(end, lead): the writer is at ``end``; fault in up to ``end + lead``. No GIL
    release, no Python-level wait: a lock held for a few stores and a condvar signal. */
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "cue(end, lead)");
        return NULL;
    }
    Py_ssize_t end = PyLong_AsSsize_t(args[0]), lead = PyLong_AsSsize_t(args[1]);
    if ((end == -1 || lead == -1) && PyErr_Occurred()) return NULL;
    if (end < 0 || lead < 0) {
        PyErr_SetString(PyExc_ValueError, "cue: negative end or lead");
        return NULL;
    }
    pthread_mutex_lock(&self->mu);
    self->wakes++;
    if (self->cur.base != NULL) {
        size_t e = (size_t)end, t = (size_t)end + (size_t)lead;
        if (t > self->cur.len) t = self->cur.len;
        if (self->ready < e) self->ready = e;
        if (lead > 0 && t > self->target) self->target = t;
        if (self->ready < self->target) pthread_cond_signal(&self->wake);
    }
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_NONE;
}

static void retire_one(Prefaulter *self, PyObject *view) {
    /* Forgets ``view`` and waits for a chunk of it in flight (takes mu). The references
    dropped cannot be the last ones: the caller holds ``view``. */
    int n = 0;
    pthread_mutex_lock(&self->mu);
    if (self->cur.view == view) {
        n++;
        self->cur = (Slot){0};
        self->ready = self->target = 0;
    }
    if (self->prev.view == view) {
        n++;
        self->prev = (Slot){0};
    }
    wait_idle(self, view);
    pthread_mutex_unlock(&self->mu);
    while (n-- > 0) Py_DECREF(view);
}

static PyObject *retire(PyObject *module, PyObject *view) {
    /* retire(view): no prefaulter touches this mapping any more (call before unmapping it). */
    pthread_mutex_lock(&all_mu);
    for (Prefaulter *p = all; p != NULL; p = p->next) retire_one(p, view);
    pthread_mutex_unlock(&all_mu);
    Py_RETURN_NONE;
}

static PyObject *stats(Prefaulter *self, PyObject *unused) {
    /* (wakes, chunks, failures, ready, target): for tests and probes. */
    pthread_mutex_lock(&self->mu);
    PyObject *r = Py_BuildValue("KKKnn", self->wakes, self->chunks, self->failures,
                                (Py_ssize_t)self->ready, (Py_ssize_t)self->target);
    pthread_mutex_unlock(&self->mu);
    return r;
}

static PyObject *is_running(Prefaulter *self, PyObject *unused) {
    pthread_mutex_lock(&self->mu);
    int r = self->running;
    pthread_mutex_unlock(&self->mu);
    return PyBool_FromLong(r);
}

static void before_fork(void) {
    pthread_mutex_lock(&all_mu);
    for (Prefaulter *p = all; p != NULL; p = p->next) pthread_mutex_lock(&p->mu);
}

static void after_fork_parent(void) {
    for (Prefaulter *p = all; p != NULL; p = p->next) pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&all_mu);
}

static void after_fork_child(void) {
    /* No thread runs here: the copies are stopped, their locks made anew. */
    for (Prefaulter *p = all; p != NULL; p = p->next) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->wake, NULL);
        pthread_cond_init(&p->idle, NULL);
        p->running = 0;
        p->stopping = 1;
        p->populating = NULL;
    }
    pthread_mutex_init(&all_mu, NULL);
}

static PyMethodDef prefaulter_methods[] = {
    {"map", (PyCFunction)map, METH_O, "map(view): fault in pages of this writable mapping."},
    {"cue", (PyCFunction)(void (*)(void))cue, METH_FASTCALL,
     "cue(end, lead): the writer is at end; fault in up to end + lead."},
    {"stop", (PyCFunction)stop, METH_NOARGS, "Join the thread and drop the mappings."},
    {"stats", (PyCFunction)stats, METH_NOARGS, "(wakes, chunks, failures, ready, target)."},
    {"running", (PyCFunction)is_running, METH_NOARGS, "True while the thread runs."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PrefaulterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "walrus._native._prefault.Prefaulter",
    .tp_basicsize = sizeof(Prefaulter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A thread that faults pages in ahead of the writer without the GIL.",
    .tp_new = new,
    .tp_dealloc = (destructor)dealloc,
    .tp_methods = prefaulter_methods,
};

static PyMethodDef module_methods[] = {
    {"retire", (PyCFunction)retire, METH_O,
     "retire(view): no prefaulter touches this mapping any more; call before unmapping it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_prefault", NULL, -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__prefault(void) {
    if (PyType_Ready(&PrefaulterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&PrefaulterType);
    if (PyModule_AddObject(m, "Prefaulter", (PyObject *)&PrefaulterType) < 0) {
        Py_DECREF(&PrefaulterType);
        Py_DECREF(m);
        return NULL;
    }
    static int registered = 0;
    if (!registered) {
        if (pthread_atfork(before_fork, after_fork_parent, after_fork_child) != 0) {
            Py_DECREF(m);
            PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
            return NULL;
        }
        registered = 1;
    }
    return m;
}
