/* walrus._native._hot: the per-call hot paths against the CPython API (METH_FASTCALL).
 *
 * A cffi call costs 120-210 ns; a Python frame reading a dozen fields costs more. Here:
 *
 * - append(log, slow, topic, data): Log.append's common case (a known topic, bytes of at
 *   most 4 KiB, nobody waiting unless SyncEach, room left in a mapped active segment);
 *   under SyncEach also the write's bookkeeping (its PendingEntries, entered in the sync
 *   book's list last) and then the call of log._wait_durable, as Log.append makes them;
 * - read_next(cursor, slow, topic, checkpoint=True, consumer=None, timeout=0):
 *   Cursor.read_next's common case (the entry is in the read-ahead, no cursor record due);
 * - sync_pass(durability, lsn): Durability.wait's lone writer (no pass running, nothing
 *   undone): the pass itself, as Durability.pass_locked and SyncBook.synced make it (see
 *   there);
 * - entries(payloads, first, topic, Entry) and slices(buf, starts, ends): a run's Entry
 *   tuples and payload bytes, built in one loop.
 *
 * Anything else calls ``slow`` (the Python method, passed in by walrus/_speedups.py) with the
 * same arguments, before anything was changed: every check and every rule stays in Python.
 *
 * Why the fast paths may skip taking the lock the Python path takes (the append lock, a
 * cursor's read_lock): they hold the GIL from start to end and run no Python code, call
 * nothing that lets go of the GIL and allocate no object the garbage collector tracks (it
 * could run a __del__), so no other thread runs meanwhile. They go on only if the lock is
 * free, so no thread is in the middle of the work the lock guards either: to every other
 * thread the fast path is as atomic as taking the lock, doing the work and letting go. An
 * interrupt cannot fall in between either (signal handlers run between bytecodes). For the
 * same reason they read only plain fields (instance dictionaries, __slots__). A Python
 * without the GIL gets no fast paths (the module does not build).
 *
 * The append does what Log.append does, in the same order: the record (payload, header,
 * then its crc, as encode_one writes it) into the mapping, then the bookkeeping stores,
 * the index entry (t.lsns.append) last; every object it stores is made before the first
 * store, so a failure (MemoryError) leaves the bookkeeping as it was.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "record.h"

#ifdef Py_GIL_DISABLED
#error "walrus._native._hot relies on the GIL (see the top of this file)"
#endif

#define SMALL_ENTRY 4096  /* Log.append checks larger payloads in Python */

/* A field name, with the offset of that field in the last type it was looked up in, at
 * that type's version tag (most names are read on one type only: the look-up in ``slots``
 * runs once). */
typedef struct { PyObject *name; PyTypeObject *type; unsigned int version; Py_ssize_t offset; }
    Name;

static Name s_p_start, s_p_end, s_p_t, s_p_seq, s_p_count, s_p_size, s_p_announce, s_p_unlist,
    s_announce, s_book, s_pending, s_wait_durable;  /* the SyncEach append (see below) */
static PyTypeObject *pending_type;  /* walrus._syncbook.PendingEntries, once told (use_pending) */
static PyObject *one;  /* 1: a durable append's entry count */

static Name s_by_name, s_mutex, s_locked, s_closed, s_sync_each, s_on_visible, s_active, s_end,
    s_check_at, s_next_seq, s_address, s_durable, s_salt, s_tid, s_lsn_base, s_nbytes,
    s_visible, s_lsns, s_append, s_topics, s_named, s_topic, s_read_lock, s_cursor, s_ahead,
    s_ahead_seq, s_lazy_every, s_persisted, s_view, s_checkpoint, s_consumer, s_timeout;

static PyObject *zero;  /* walrus._wait.NOW (0): read_next's default timeout */
static PyTypeObject *mmap_type;  /* mmap.mmap: the only mapping the append writes through */

/* Fields of __slots__ classes (Log's hot fields, Cursor's, Topic, Segment, Position) are read
 * and written at their offset, as their member descriptors do, instead of through a generic
 * attribute look-up (which costs more than the rest of an append). The offset is looked up
 * once per type in the type's own dictionary (a member descriptor of an object field of that
 * type or a base: what __slots__ makes), and cached with a reference to the type and its
 * version tag, in ``slots`` and in the Name itself (its last type); a class attribute set
 * or deleted since (a new tag) looks again, and any other type (a plain class, a subclass)
 * takes the generic look-up. */
static struct { PyObject *name; PyTypeObject *type; unsigned int version; Py_ssize_t offset; }
    slots[64];
static int nslots;

static unsigned int version_of(PyTypeObject *type) {
    /* The type's version tag (CPython gives a type a new one, or 0, whenever anything in its
     * dictionary or its bases' changes: a class attribute set or deleted), or 0 if it has
     * none; an offset is cached only with a tag, and used only while the type has that tag. */
    if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG))
        (void)_PyType_Lookup(type, s_locked.name);  /* assigns one if it can (never raises) */
    return PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG) ? type->tp_version_tag : 0;
}

static Py_ssize_t find_offset(PyTypeObject *type, unsigned int version, PyObject *name) {
    /* The offset of field ``name`` in objects of exactly ``type`` at ``version``, or -1
     * (generic look-up). */
    int i = 0;
    for (; i < nslots; i++)
        if (slots[i].type == type && slots[i].name == name) {
            if (slots[i].version == version)
                return slots[i].offset;
            break;  /* the type changed since: look again, in the same entry */
        }
    Py_ssize_t offset = -1;
    PyObject *d = type->tp_dict == NULL || version == 0 ? NULL
        : PyDict_GetItemWithError(type->tp_dict, name);
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)
            && PyType_IsSubtype(type, PyDescr_TYPE(d))) {  /* else the descriptor refuses o */
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
            offset = m->offset;
    }
    PyErr_Clear();
    if (i == nslots && nslots < (int)(sizeof slots / sizeof slots[0])) {
        Py_INCREF(type);  /* kept: its address never names another type */
        slots[nslots].name = name;
        slots[nslots].type = type;
        nslots++;
    }
    if (i < nslots) {
        slots[i].version = version;
        slots[i].offset = offset;
    }
    return offset;
}

static inline Py_ssize_t offset_of(PyObject *o, Name *name) {
    /* The offset of field ``name`` in ``o`` (-1: the generic look-up). The Name keeps its last
     * type without a reference (one taken at each switch of type was never given back): the
     * pointer is only compared, and an offset is used only with the version tag it was found
     * at; tags are never reused, and a type's tag is 0 once it changed, so a type freed and
     * another made at its address never matches a cached offset (version 0 caches -1). */
    PyTypeObject *type = Py_TYPE(o);
    if (name->type != type || name->version != type->tp_version_tag) {
        unsigned int version = version_of(type);
        Py_ssize_t offset = find_offset(type, version, name->name);
        name->type = type;  /* borrowed: only compared (see above) */
        name->version = version;
        name->offset = offset;
    }
    return name->offset;
}

static PyObject *get(PyObject *o, Name *name) {
    /* o.name, a new reference (NULL with an exception set if it is not there). */
    Py_ssize_t offset = offset_of(o, name);
    if (offset < 0)
        return PyObject_GetAttr(o, name->name);
    PyObject *v = *(PyObject **)((char *)o + offset);
    if (v == NULL) {
        PyErr_SetObject(PyExc_AttributeError, name->name);
        return NULL;
    }
    Py_INCREF(v);
    return v;
}

static int set(PyObject *o, Name *name, PyObject *v) {
    /* o.name = v; what the member descriptor's setter does, for a slot. */
    Py_ssize_t offset = offset_of(o, name);
    if (offset < 0)
        return PyObject_SetAttr(o, name->name, v);
    PyObject **field = (PyObject **)((char *)o + offset);
    PyObject *old = *field;
    Py_INCREF(v);
    *field = v;
    Py_XDECREF(old);  /* an int: freeing it runs no Python code */
    return 0;
}

static inline int as_ll(PyObject *v, long long *out) {
    /* PyLong_AsLongLong, without its general conversion for the ints of one or two digits
     * that every field here holds (CPython's int layout before 3.12: a signed digit count,
     * then 30-bit digits). Exact ints only: anything else (an object with __index__) would
     * run Python code after the lock check, so it takes the slow path (-1 with an exception
     * set, as for an int too large). */
    if (!PyLong_CheckExact(v)) {
        PyErr_SetString(PyExc_TypeError, "not an int");
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000 && PyLong_SHIFT == 30
    {
        const digit *d = ((PyLongObject *)v)->ob_digit;
        switch (Py_SIZE(v)) {
        case 0: *out = 0; return 0;
        case 1: *out = (long long)d[0]; return 0;
        case -1: *out = -(long long)d[0]; return 0;
        case 2: *out = (long long)d[0] | ((long long)d[1] << PyLong_SHIFT); return 0;
        }
    }
#endif
    *out = PyLong_AsLongLong(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int get_ll(PyObject *o, Name *name, long long *out) {
    /* An int field; -1 with an exception set if it is missing or not an int. */
    PyObject *v = get(o, name);
    if (v == NULL)
        return -1;
    int r = as_ll(v, out);
    Py_DECREF(v);
    return r;
}

/* threading.Lock's object, as CPython 3.11 and 3.12 lay it out (Modules/_threadmodule.c):
 * its locked() method returns ``locked``. Read directly only when the module's start-up check
 * (lock_layout_holds) found this layout on the running interpreter; else locked() is called. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} LockLayout;

static PyTypeObject *lock_type;  /* _thread.lock, when its ``locked`` field is read directly */

static int is_free(PyObject *o, Name *lock_name) {
    /* 1 if the lock in field ``lock_name`` of ``o`` is free, 0 if held, -1 on error. */
    PyObject *lock = get(o, lock_name);
    if (lock == NULL)
        return -1;
    if (Py_IS_TYPE(lock, lock_type)) {  /* what lock.locked() returns, without the call */
        int free = !((LockLayout *)lock)->locked;
        Py_DECREF(lock);
        return free;
    }
    PyObject *held = PyObject_CallMethodNoArgs(lock, s_locked.name);
    Py_DECREF(lock);
    if (held == NULL)
        return -1;
    int free = held == Py_False;
    Py_DECREF(held);
    return free;
}

static int is_true(PyObject *o, Name *name) {
    /* 1 if field ``name`` of ``o`` is a true value (only True counts, anything else that is
     * not False or None takes the slow path), 0 if False/None, -1 otherwise or on error. */
    PyObject *v = get(o, name);
    if (v == NULL)
        return -1;
    int r = v == Py_True ? 1 : (v == Py_False || v == Py_None) ? 0 : -1;
    Py_DECREF(v);
    return r;
}

/* array.array's object, as CPython 3.11 and 3.12 lay it out (Modules/arraymodule.c). A
 * topic's LSN table is an array('Q'); appending one LSN where the array has room is what
 * array.append does then (array_resize only sets the size): the value in the next item, the
 * size one up. Done directly only when the start-up check (array_layout_holds) found this
 * layout on the running interpreter; else, and when the array must grow or lends its buffer
 * out, array.append is called. */
typedef struct {
    PyObject_VAR_HEAD
    char *ob_item;
    Py_ssize_t allocated;
    const void *ob_descr;  /* never followed: compared with q_descr */
    PyObject *weakreflist;
    Py_ssize_t ob_exports;
} ArrayLayout;

static PyTypeObject *array_type;  /* array.array */
static PyObject *array_append;  /* array.array.append (called when the array must grow) */
static int array_direct;  /* 1: ArrayLayout holds on this interpreter */
static const void *q_descr;  /* ob_descr of every array('Q'): the module's descriptor of 'Q' */

static inline int lsns_room(PyObject *a) {
    /* 1 if one LSN can go into array ``a`` without it growing (see ArrayLayout). */
    if (!array_direct || !Py_IS_TYPE(a, array_type))
        return 0;
    ArrayLayout *arr = (ArrayLayout *)a;
    return arr->ob_descr == q_descr && arr->ob_exports == 0 && arr->ob_item != NULL
        && Py_SIZE(a) < arr->allocated;
}

static inline void lsns_put(PyObject *a, uint64_t lsn) {
    ArrayLayout *arr = (ArrayLayout *)a;
    memcpy(arr->ob_item + 8 * Py_SIZE(a), &lsn, 8);
    Py_SET_SIZE(a, Py_SIZE(a) + 1);
}

/* Why an append went to the Python method, counted (an increment on that path only):
 * fallbacks() reads them, for diagnosis and for tests that an append took the C path. */
enum { FB_CALL, FB_TOPIC, FB_LOCK, FB_MODE, FB_WAITERS, FB_ROOM, FB_MAPPING, FB_FIELD,
       FB_COUNT };
static const char *const fallback_names[FB_COUNT] = {
    "call", "new topic", "lock held", "closed or SyncEach", "waiters", "room", "no mapping",
    "field"};
static unsigned long long append_fallbacks[FB_COUNT];
#define FALLBACK(reason, label) do { why = (reason); goto label; } while (0)

static PyObject *fallbacks(PyObject *mod, PyObject *unused) {
    /* {reason: count} of the appends that went to the Python method since the import. */
    PyObject *out = PyDict_New();
    for (int i = 0; out != NULL && i < FB_COUNT; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(append_fallbacks[i]);
        if (n == NULL || PyDict_SetItemString(out, fallback_names[i], n))
            Py_CLEAR(out);
        Py_XDECREF(n);
    }
    return out;
}

static PyObject *call_slow(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    /* slow(owner, *rest): args are (owner, slow, *rest); the callers checked nargs >= 2. */
    PyErr_Clear();  /* a field that did not look as expected: Python decides */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *stack[12];
    if (nargs + nkw > 13)
        return PyErr_Format(PyExc_TypeError, "too many arguments");
    stack[0] = args[0];
    for (Py_ssize_t i = 2; i < nargs + nkw; i++)
        stack[i - 1] = args[i];
    return PyObject_Vectorcall(args[1], stack, nargs - 1, kwnames);
}

static PyObject *hot_append(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    if (nargs < 2)
        return PyErr_Format(PyExc_TypeError, "append(owner, slow, ...): too few arguments");
    int why;  /* why it goes to the Python method, if it does (FB_...) */
    if (nargs != 4 || kwnames != NULL)
        FALLBACK(FB_CALL, slow);  /* keywords (topic=, data=): Python binds them */
    PyObject *log = args[0], *topic = args[2], *data = args[3];
    if (!PyUnicode_CheckExact(topic) || !PyBytes_CheckExact(data)
            || PyBytes_GET_SIZE(data) > SMALL_ENTRY)
        FALLBACK(FB_CALL, slow);
    PyObject *by_name = get(log, &s_by_name);
    if (by_name == NULL)
        FALLBACK(FB_FIELD, slow);
    PyObject *t = PyDict_CheckExact(by_name) ? PyDict_GetItemWithError(by_name, topic) : NULL;
    Py_XINCREF(t);
    Py_DECREF(by_name);
    if (t == NULL)
        FALLBACK(FB_TOPIC, slow);  /* a new topic: the validating path */
    PyObject *seg = NULL, *o_nbytes = NULL, *o_end = NULL, *o_next = NULL, *o_lsn = NULL,
        *lsns = NULL, *pending = NULL, *pending_list = NULL, *o_start = NULL, *o_stop = NULL,
        *o_size = NULL, *o_seq = NULL;
    int sync_each = is_true(log, &s_sync_each);  /* set once, before any write */
    if (sync_each < 0 || (sync_each && pending_type == NULL))
        FALLBACK(FB_MODE, slow_t);
    if (sync_each) {
        /* The write's PendingEntries (its fields filled below) and the bound _announce it
         * keeps are objects the garbage collector tracks: made here, before the lock is
         * seen free, never after (see the top of this file). */
        pending = pending_type->tp_alloc(pending_type, 0);
        PyObject *announce = pending == NULL ? NULL : get(log, &s_announce);
        if (announce == NULL || set(pending, &s_p_announce, announce)
                || set(pending, &s_p_unlist, Py_None) || set(pending, &s_p_t, t)
                || set(pending, &s_p_count, one)) {
            Py_XDECREF(announce);
            FALLBACK(FB_FIELD, slow_t);
        }
        Py_DECREF(announce);
        PyObject *book = get(log, &s_book);
        pending_list = book == NULL ? NULL : get(book, &s_pending);
        Py_XDECREF(book);
        if (pending_list == NULL || !PyList_CheckExact(pending_list))
            FALLBACK(FB_FIELD, slow_t);
    }
    int lock_free = is_free(log, &s_mutex);
    if (lock_free != 1)
        FALLBACK(lock_free == 0 ? FB_LOCK : FB_FIELD, slow_t);
    if (is_true(log, &s_closed) != 0)
        FALLBACK(FB_MODE, slow_t);
    if (sync_each) {
        /* The objects above may have run a collection, and with it Python code and other
         * threads: a failed pass may have undone the creation of ``t`` meanwhile (it
         * leaves the table, Log._unlist). Never write into a topic that is no longer in
         * it (its entry would belong to no topic, its offset would be handed out again):
         * look again, now that nothing else runs (an exact str key runs no Python code). */
        PyObject *names = get(log, &s_by_name);
        PyObject *now = names != NULL && PyDict_CheckExact(names)
            ? PyDict_GetItemWithError(names, topic) : NULL;
        Py_XDECREF(names);  /* the log keeps the table; ``now`` is only compared */
        if (now != t)
            FALLBACK(FB_TOPIC, slow_t);
    }
    if (!sync_each) {  /* under SyncEach the pass that publishes the entry wakes readers */
        PyObject *on_visible = get(log, &s_on_visible);
        if (on_visible == NULL)
            FALLBACK(FB_FIELD, slow_t);
        Py_DECREF(on_visible);
        if (on_visible != Py_None)
            FALLBACK(FB_WAITERS, slow_t);  /* the wake-up follows the Python path's rule */
    }
    seg = get(log, &s_active);
    if (seg == NULL || seg == Py_None)
        FALLBACK(FB_FIELD, slow_t);
    long long p, check_at, seq, durable, salt, tid, lsn_base, nbytes;
    if (get_ll(seg, &s_end, &p) || get_ll(seg, &s_check_at, &check_at))
        FALLBACK(FB_FIELD, slow_t);
    uint64_t n = (uint64_t)PyBytes_GET_SIZE(data);
    uint64_t end = ((uint64_t)p + HEADER + n + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
    if (p < 0 || end > (uint64_t)check_at)
        FALLBACK(FB_ROOM, slow_t);  /* full, abandoned, or a mark to leave: make_room */
    PyObject *address = get(seg, &s_address);
    if (address == NULL || address == Py_None) {
        Py_XDECREF(address);
        FALLBACK(FB_MAPPING, slow_t);  /* not a writable mapping: the backend's write */
    }
    Py_DECREF(address);
    PyObject *view = get(seg, &s_view);  /* the mapping itself (an mmap) */
    if (view == NULL || !Py_IS_TYPE(view, mmap_type)) {
        /* Anything else may export its buffer through Python code (a class with
         * __buffer__, PEP 688), which runs after the lock check and may let another
         * thread append meanwhile: the stale write position read above would then be
         * written over. The Python path writes through ``address``. */
        Py_XDECREF(view);
        FALLBACK(FB_MAPPING, slow_t);
    }
    Py_buffer mapped;
    int refused = PyObject_GetBuffer(view, &mapped, PyBUF_WRITABLE);
    Py_DECREF(view);
    if (refused)
        FALLBACK(FB_MAPPING, slow_t);
    unsigned char *dst = mapped.buf;
    Py_ssize_t mapped_len = mapped.len;
    PyBuffer_Release(&mapped);  /* the segment keeps the mapping open: Segment.view */
    if (end > (uint64_t)mapped_len
            || get_ll(t, &s_next_seq, &seq) || get_ll(log, &s_durable, &durable)
            || get_ll(seg, &s_salt, &salt) || get_ll(t, &s_tid, &tid)
            || get_ll(seg, &s_lsn_base, &lsn_base) || get_ll(t, &s_nbytes, &nbytes))
        FALLBACK(end > (uint64_t)mapped_len ? FB_ROOM : FB_FIELD, slow_t);
    lsns = get(t, &s_lsns);
    if (lsns == NULL)
        FALLBACK(FB_FIELD, slow_t);
    uint64_t lsn = (uint64_t)lsn_base | (uint64_t)p;
    int in_place = lsns_room(lsns);  /* 1: the LSN goes in without the array growing */
    o_nbytes = PyLong_FromLongLong(nbytes + (long long)(end - (uint64_t)p));
    o_end = PyLong_FromUnsignedLongLong(end);
    o_next = PyLong_FromLongLong(seq + 1);
    o_lsn = in_place ? NULL : PyLong_FromUnsignedLongLong(lsn);
    if (o_nbytes == NULL || o_end == NULL || o_next == NULL || (!in_place && o_lsn == NULL))
        FALLBACK(FB_FIELD, slow_t);
    if (sync_each) {  /* the pending write: LSNs [lsn, lsn + its size), entry seq */
        o_start = PyLong_FromUnsignedLongLong(lsn);
        o_stop = PyLong_FromUnsignedLongLong(lsn + (end - (uint64_t)p));
        o_size = PyLong_FromUnsignedLongLong(end - (uint64_t)p);
        o_seq = PyLong_FromLongLong(seq);
        if (o_start == NULL || o_stop == NULL || o_size == NULL || o_seq == NULL
                || set(pending, &s_p_start, o_start) || set(pending, &s_p_end, o_stop)
                || set(pending, &s_p_seq, o_seq) || set(pending, &s_p_size, o_size))
            FALLBACK(FB_FIELD, slow_t);
    }
    /* From here on nothing fails before the last call (n < BIG: the GIL is kept). */
    encode_one(dst, (uint64_t)p, (const unsigned char *)PyBytes_AS_STRING(data), n,
               (uint32_t)tid, 0, (uint64_t)seq, (uint64_t)durable, (uint32_t)salt);
    /* Under SyncEach the entry becomes visible once durable (the pass publishes it). */
    if (set(t, &s_nbytes, o_nbytes) || set(seg, &s_end, o_end)
            || (!sync_each && set(t, &s_visible, o_next)) || set(t, &s_next_seq, o_next))
        goto failed;
    if (in_place) {
        lsns_put(lsns, lsn);  /* what t.lsns.append(lsn) does when the array has room */
    } else {
        PyObject *r = array_append == NULL || !Py_IS_TYPE(lsns, array_type)
            ? PyObject_CallMethodOneArg(lsns, s_append.name, o_lsn)
            : PyObject_Vectorcall(array_append, (PyObject *[]){lsns, o_lsn}, 2, NULL);
        if (r == NULL)
            goto failed;
        Py_DECREF(r);
    }
    if (sync_each && PyList_Append(pending_list, pending))  /* SyncBook.add, last */
        goto failed;
    Py_DECREF(o_nbytes); Py_DECREF(o_end); Py_DECREF(o_next); Py_XDECREF(o_lsn);
    Py_DECREF(lsns); Py_DECREF(seg); Py_DECREF(t);
    Py_XDECREF(pending); Py_XDECREF(pending_list);
    Py_XDECREF(o_start); Py_XDECREF(o_size);
    if (!sync_each)
        return PyLong_FromLongLong(seq);
    /* Log.append's wait, outside the append: other writers join this sync. */
    PyObject *wait = get(log, &s_wait_durable);
    PyObject *r = wait == NULL ? NULL : PyObject_CallOneArg(wait, o_stop);
    Py_XDECREF(wait);
    Py_DECREF(o_stop);
    if (r == NULL) {
        Py_DECREF(o_seq);
        return NULL;
    }
    Py_DECREF(r);
    return o_seq;
failed:  /* a slot store or the array failed (MemoryError): never expected */
    Py_DECREF(o_nbytes); Py_DECREF(o_end); Py_DECREF(o_next); Py_XDECREF(o_lsn);
    Py_DECREF(lsns); Py_DECREF(seg); Py_DECREF(t);
    Py_XDECREF(pending); Py_XDECREF(pending_list);
    Py_XDECREF(o_start); Py_XDECREF(o_stop); Py_XDECREF(o_size); Py_XDECREF(o_seq);
    return NULL;
slow_t:
    Py_XDECREF(o_nbytes); Py_XDECREF(o_end); Py_XDECREF(o_next); Py_XDECREF(o_lsn);
    Py_XDECREF(lsns); Py_XDECREF(seg);
    Py_XDECREF(pending); Py_XDECREF(pending_list);
    Py_XDECREF(o_start); Py_XDECREF(o_stop); Py_XDECREF(o_size); Py_XDECREF(o_seq);
    Py_DECREF(t);
slow:
    append_fallbacks[why]++;
    return call_slow(args, nargs, kwnames);
}

/* A named consumer's Position is two dictionary look-ups away (cursor.named[consumer][topic]).
 * The last answer is kept with the version tags of both dictionaries (PEP 509: a tag is new
 * with every dictionary made and every change made to one, so no two share one): while the
 * cursor's ``named`` is at the same address with the same tag, it is the same dictionary,
 * unchanged, so it still holds the same ``mine``; while that one's tag is unchanged too, the
 * look-ups give the same Position, alive in it. The cache holds references to the two keys
 * only (no other str can take their address; dropping a str runs no Python code). Only
 * before Python 3.12, where the tags are not deprecated. */
static struct {
    PyObject *named, *mine, *consumer, *topic, *position;
    uint64_t named_tag, mine_tag;
} last_named;

static PyObject *named_position(PyObject *named, PyObject *consumer, PyObject *topic) {
    /* cursor.named[consumer][topic] (a borrowed reference), or NULL (an error may be set). */
    if (!PyDict_CheckExact(named))
        return NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (last_named.named == named && last_named.consumer == consumer
            && last_named.topic == topic
            && ((PyDictObject *)named)->ma_version_tag == last_named.named_tag
            && ((PyDictObject *)last_named.mine)->ma_version_tag == last_named.mine_tag)
        return last_named.position;
#endif
    PyObject *mine = PyDict_GetItemWithError(named, consumer);
    if (mine == NULL || !PyDict_CheckExact(mine))
        return NULL;
    PyObject *position = PyDict_GetItemWithError(mine, topic);
    if (position == NULL)
        return NULL;
#if PY_VERSION_HEX < 0x030C0000
    PyObject *old_consumer = last_named.consumer, *old_topic = last_named.topic;
    Py_INCREF(consumer);
    Py_INCREF(topic);
    last_named.named = named;
    last_named.mine = mine;
    last_named.consumer = consumer;
    last_named.topic = topic;
    last_named.position = position;
    last_named.named_tag = ((PyDictObject *)named)->ma_version_tag;
    last_named.mine_tag = ((PyDictObject *)mine)->ma_version_tag;
    Py_XDECREF(old_consumer);  /* exact strs: freeing them runs no Python code */
    Py_XDECREF(old_topic);
#endif
    return position;
}

static PyObject *hot_read_next(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    if (nargs < 2)
        return PyErr_Format(PyExc_TypeError, "read_next(owner, slow, ...): too few arguments");
    if (nargs < 3 || nargs > 6)
        goto slow;
    PyObject *cursor = args[0], *topic = args[2];
    PyObject *checkpoint = nargs > 3 ? args[3] : Py_True;
    PyObject *consumer = nargs > 4 ? args[4] : Py_None;
    PyObject *timeout = nargs > 5 ? args[5] : zero;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {  /* keywords: interned names, as calls pass them */
        PyObject *name = PyTuple_GET_ITEM(kwnames, i), *value = args[nargs + i];
        if (name == s_checkpoint.name && nargs <= 3)
            checkpoint = value;
        else if (name == s_consumer.name && nargs <= 4)
            consumer = value;
        else if (name == s_timeout.name && nargs <= 5)
            timeout = value;
        else
            goto slow;  /* anything else (a duplicate, an unknown name): Python says what */
    }
    if (timeout != zero || !PyUnicode_CheckExact(topic)
            || (checkpoint != Py_True && checkpoint != Py_False))
        goto slow;
    PyObject *c, *t;  /* the cursor's holder (the topic, or a Position) and the topic */
    if (consumer == Py_None) {
        PyObject *topics = get(cursor, &s_topics);
        if (topics == NULL)
            goto slow;
        c = PyDict_CheckExact(topics) ? PyDict_GetItemWithError(topics, topic) : NULL;
        Py_XINCREF(c);
        Py_DECREF(topics);
        if (c == NULL)
            goto slow;
        t = c;
        Py_INCREF(t);
    } else {
        if (!PyUnicode_CheckExact(consumer))
            goto slow;
        PyObject *named = get(cursor, &s_named);
        if (named == NULL)
            goto slow;
        c = named_position(named, consumer, topic);
        Py_XINCREF(c);
        Py_DECREF(named);
        if (c == NULL)
            goto slow;
        t = get(c, &s_topic);
        if (t == NULL || t == Py_None) {
            Py_XDECREF(t);
            Py_DECREF(c);
            goto slow;
        }
    }
    PyObject *result = NULL;
    long long seq, visible, ahead_seq, persisted, lazy;
    if (is_free(c, &s_read_lock) != 1 || is_true(cursor, &s_closed) != 0
            || get_ll(c, &s_cursor, &seq) || get_ll(t, &s_visible, &visible))
        goto slow_ct;
    if (seq >= visible) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    PyObject *ahead = get(c, &s_ahead);
    if (ahead == NULL)
        goto slow_ct;
    if (!PyList_CheckExact(ahead) || get_ll(c, &s_ahead_seq, &ahead_seq)
            || seq - ahead_seq < 0 || seq - ahead_seq >= PyList_GET_SIZE(ahead)) {
        Py_DECREF(ahead);
        goto slow_ct;  /* the read-ahead is used up: refill it in Python */
    }
    PyObject *entry = PyList_GET_ITEM(ahead, seq - ahead_seq);
    Py_INCREF(entry);
    Py_DECREF(ahead);
    if (checkpoint == Py_True) {
        if (get_ll(c, &s_persisted, &persisted) || get_ll(cursor, &s_lazy_every, &lazy)
                || seq - persisted >= lazy) {
            Py_DECREF(entry);
            goto slow_ct;  /* a cursor record is due (or StrictlyAtOnce): Python writes it */
        }
        PyObject *next = PyLong_FromLongLong(seq + 1);  /* AtLeastOnce between persists */
        if (next == NULL || set(c, &s_cursor, next)) {
            Py_XDECREF(next);
            Py_DECREF(entry);
            goto slow_ct;  /* nothing changed: Python decides */
        }
        Py_DECREF(next);
    }
    result = entry;
done:
    Py_DECREF(c);
    Py_DECREF(t);
    return result;
slow_ct:
    Py_DECREF(c);
    Py_DECREF(t);
slow:
    return call_slow(args, nargs, kwnames);
}

static PyObject *hot_entries(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    /* entries(payloads: list, first: int, topic: str, Entry: type) -> list[Entry] */
    if (nargs != 4 || !PyList_CheckExact(args[0]) || !PyType_Check(args[3])
            || !PyType_IsSubtype((PyTypeObject *)args[3], &PyTuple_Type))
        return PyErr_Format(PyExc_TypeError, "entries(payloads, first, topic, Entry)");
    PyObject *payloads = args[0], *topic = args[2];
    PyTypeObject *type = (PyTypeObject *)args[3];
    long long first = PyLong_AsLongLong(args[1]);
    if (first == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(payloads);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *offset = PyLong_FromLongLong(first + i);
        PyObject *e = offset == NULL ? NULL : type->tp_alloc(type, 3);
        if (e == NULL) {
            Py_XDECREF(offset);
            Py_DECREF(out);
            return NULL;
        }
        PyObject *data = PyList_GET_ITEM(payloads, i);
        Py_INCREF(data);
        Py_INCREF(topic);
        PyTuple_SET_ITEM(e, 0, data);
        PyTuple_SET_ITEM(e, 1, offset);
        PyTuple_SET_ITEM(e, 2, topic);
        PyList_SET_ITEM(out, i, e);
    }
    return out;
}

static PyObject *hot_slices(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    /* slices(buf, starts, ends) -> [bytes(buf[s:e]) for s, e in zip(starts, ends)];
     * starts and ends are array('Q') of the same length, every slice inside buf. */
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "slices(buf, starts, ends)");
    Py_buffer buf, starts, ends;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE))
        return NULL;
    if (PyObject_GetBuffer(args[1], &starts, PyBUF_FORMAT)) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &ends, PyBUF_FORMAT)) {
        PyBuffer_Release(&starts);
        PyBuffer_Release(&buf);
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n = starts.len / 8;
    if (starts.itemsize != 8 || ends.itemsize != 8 || ends.len != starts.len
            || starts.format == NULL || ends.format == NULL
            || strcmp(starts.format, "Q") || strcmp(ends.format, "Q")) {
        PyErr_SetString(PyExc_TypeError, "slices: starts and ends must be array('Q')");
        goto done;
    }
    const uint64_t *s = starts.buf, *e = ends.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] > e[i] || e[i] > (uint64_t)buf.len) {
            PyErr_SetString(PyExc_ValueError, "slices: a slice outside the buffer");
            goto done;
        }
    }
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)buf.buf + s[i],
                                                (Py_ssize_t)(e[i] - s[i]));
        if (b == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, b);
    }
done:
    PyBuffer_Release(&ends);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&buf);
    return out;
}

static PyObject *direct(PyObject *mod, PyObject *unused);

/* The lone writer's sync pass (Durability.wait, walrus/_durability.py), told its Python
 * side by use_durability(): */
static PyObject *d_globals;  /* walrus._durability's globals: GATHER_FLOOR, RECHECK (read at
                              * each pass: tests change them) */
static PyObject *base_sync_files;  /* Backend.sync_files: one sync per file, in order */
static PyObject *direct_files;  /* {File class: its sync}, each an os.fdatasync(self._fd) */
static PyObject *log_announce;  /* Log._announce: nothing to do while nobody waits */
static Name s_d_log, s_d_mutex, s_busy, s_owner, s_undone, s_sleepers, s_on_cond, s_gather,
    s_backend, s_file, s_fd, s_unsynced, s_frozen, s_sealed, s_abandon_at, s_read_only, s_size;
static Name str_sync_files, str_sync, str_handed_back, str_pass_failed, str_synced,
    str_gather_floor, str_recheck;  /* only their names are used (look-ups, calls) */

#define MARK_KIND 7u  /* walrus._codec.MARK */
#define MAX_SETTLE 16  /* pending writes one pass settles here; more: SyncBook.synced */

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int list_is_empty(PyObject *o, Name *name) {
    /* 1 if field ``name`` of ``o`` is an empty list, 0 if a list with items, -1 otherwise. */
    PyObject *v = get(o, name);
    if (v == NULL)
        return -1;
    int r = PyList_CheckExact(v) ? PyList_GET_SIZE(v) == 0 : -1;
    Py_DECREF(v);
    return r;
}

static int bound_to(PyObject *method, PyObject *func) {
    /* 1 if ``method`` is ``func`` bound to an object (nothing set on the instance instead). */
    return method != NULL && func != NULL && PyMethod_Check(method)
        && PyMethod_GET_FUNCTION(method) == func;
}

static int settle(PyObject *log, PyObject *book, PyObject *seg, long long target,
                  PyObject *o_target, PyObject **published, int *count) {
    /* SyncBook._settle for the common case, under the GIL alone: the append lock is free, no
     * sealed segment waits for a sync, the active segment is still ``seg`` (a writable
     * mapping, or the log is not marked), every pending write this pass covers is a
     * PendingEntries (at most MAX_SETTLE of them). 1 when done (``published`` then holds
     * a new reference to each write it published, ``count`` of them), 0 if the case is
     * another (nothing changed: SyncBook.synced decides), -1 on error (nothing changed).
     * As in append: every check and every object first, then stores only, without a call
     * into Python; the writers' readers are told afterwards (see sync_pass). */
    long long durable, end = 0, size, salt = 0, abandoned_none;
    PyObject *active = NULL, *pending = NULL, *view = NULL;
    PyObject *items[MAX_SETTLE], *visible[MAX_SETTLE];
    int n = 0, r = 0;
    *count = 0;
    if (is_free(log, &s_mutex) != 1 || list_is_empty(book, &s_unsynced) != 1)
        goto out;
    PyObject *frozen = get(book, &s_frozen);
    if (frozen == NULL)
        goto out;
    Py_DECREF(frozen);
    active = get(log, &s_active);
    if (frozen != Py_None || active != seg || get_ll(log, &s_durable, &durable))
        goto out;
    int mark = 0;  /* 1: claim the durable point just past the end (Log.durable_through) */
    unsigned char *dst = NULL;
    if (target > durable) {
        PyObject *abandon_at = get(log, &s_abandon_at);
        if (abandon_at == NULL)
            goto out;
        abandoned_none = abandon_at == Py_None;
        Py_DECREF(abandon_at);
        int sealed = is_true(seg, &s_sealed), read_only = is_true(log, &s_read_only);
        if (sealed < 0 || read_only < 0)
            goto out;
        if (!sealed && abandoned_none && !read_only) {
            if (get_ll(seg, &s_end, &end) || get_ll(seg, &s_size, &size))
                goto out;
            if (end >= 0 && end + (long long)HEADER <= size) {  /* else mark_durable skips it */
                view = get(seg, &s_view);
                if (view == NULL || !Py_IS_TYPE(view, mmap_type)
                        || get_ll(seg, &s_salt, &salt))
                    goto out;  /* written through the backend: the Python path */
                Py_buffer mapped;
                if (PyObject_GetBuffer(view, &mapped, PyBUF_WRITABLE))
                    goto out;
                dst = mapped.buf;
                Py_ssize_t len = mapped.len;
                PyBuffer_Release(&mapped);  /* the segment keeps the mapping: Segment.view */
                if (end + (long long)HEADER > len)
                    goto out;
                mark = 1;
            }
        }
    }
    pending = get(book, &s_pending);
    if (pending == NULL || !PyList_CheckExact(pending))
        goto out;
    Py_ssize_t total = PyList_GET_SIZE(pending);
    for (; n < total; n++) {
        PyObject *item = PyList_GET_ITEM(pending, n);
        long long item_end, seq, cnt, was;
        if (!Py_IS_TYPE(item, pending_type) || get_ll(item, &s_p_end, &item_end))
            goto out;
        if (item_end > target)
            break;
        if (n == MAX_SETTLE)
            goto out;
        PyObject *t = get(item, &s_p_t);
        int bad = t == NULL || get_ll(item, &s_p_seq, &seq) || get_ll(item, &s_p_count, &cnt)
            || get_ll(t, &s_visible, &was);
        Py_XDECREF(t);
        if (bad)
            goto out;
        visible[n] = was < seq + cnt ? PyLong_FromLongLong(seq + cnt) : NULL;
        if (was < seq + cnt && visible[n] == NULL) {
            r = -1;
            goto out;
        }
        Py_INCREF(item);
        items[n] = item;
    }
    /* Stores only from here. */
    if (target > durable) {
        if (set(log, &s_durable, o_target))
            goto failed;
        if (mark) {  /* a MARK record, its crc last, as mark_durable packs it */
            unsigned char *h = dst + end;
            put32(h, 0);
            put32(h + 4, 0);
            put32(h + 8, 0);
            put16(h + 12, MARK_KIND);
            put16(h + 14, 0);
            put64(h + 16, 0);
            put64(h + 24, (uint64_t)target);
            put32(h, crc_of(h + 4, HEADER - 4, (uint32_t)salt));
        }
    }
    for (int i = 0; i < n; i++) {
        if (visible[i] == NULL) {
            Py_CLEAR(items[i]);  /* nothing new to publish: nobody to tell */
            continue;
        }
        PyObject *t = get(items[i], &s_p_t);
        if (t == NULL || set(t, &s_visible, visible[i])) {
            Py_XDECREF(t);
            goto failed;
        }
        Py_DECREF(t);
        Py_CLEAR(visible[i]);
        published[(*count)++] = items[i];  /* the reference moves */
        items[i] = NULL;
    }
    if (n && PyList_SetSlice(pending, 0, n, NULL))
        goto failed;
    n = 0;
    r = 1;
    goto out;
failed:  /* a store failed (MemoryError): never expected */
    r = -1;
out:
    for (int i = 0; i < n; i++) {
        Py_XDECREF(items[i]);
        Py_XDECREF(visible[i]);
    }
    if (r < 0 && *count) {
        for (int i = 0; i < *count; i++)
            Py_DECREF(published[i]);
        *count = 0;
    }
    if (r == 0)
        PyErr_Clear();
    Py_XDECREF(active);
    Py_XDECREF(pending);
    Py_XDECREF(view);
    return r;
}

static int tell_readers(PyObject *log, PyObject **published, int count) {
    /* What PendingEntries.publish does after its store: announce(t), for each write
     * published; skipped where it is Log._announce and nobody waits (the call would do
     * nothing). Every one is told even if one raises; the first error is kept: -1. */
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    for (int i = 0; i < count; i++) {
        PyObject *announce = get(published[i], &s_p_announce);
        PyObject *t = announce == NULL ? NULL : get(published[i], &s_p_t);
        PyObject *r = NULL;
        if (t != NULL) {
            int idle = 0;
            if (bound_to(announce, log_announce) && PyMethod_GET_SELF(announce) == log) {
                PyObject *on_visible = get(log, &s_on_visible);
                idle = on_visible == Py_None;
                Py_XDECREF(on_visible);
            }
            if (PyErr_Occurred())
                r = NULL;
            else
                r = idle ? Py_NewRef(Py_None) : PyObject_CallOneArg(announce, t);
        }
        Py_XDECREF(r);
        Py_XDECREF(t);
        Py_XDECREF(announce);
        Py_DECREF(published[i]);
        if (r == NULL && type == NULL)
            PyErr_Fetch(&type, &value, &tb);
        else if (r == NULL)
            PyErr_Clear();
    }
    if (type == NULL)
        return 0;
    PyErr_Restore(type, value, tb);
    return -1;
}

static PyObject *hot_sync_pass(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    /* sync_pass(durability, lsn) -> True once everything up to ``lsn`` is durable by a pass
     * this thread ran (or none was needed), None if Durability.wait must decide (another
     * pass runs, a failure undid writes, a sealed segment waits for its sync, ...).
     *
     * The rules are Durability.wait's for a writer that finds no pass running, taken in the
     * same order: the right to run passes is taken under the GIL alone, where the condition's
     * lock is free (as atomic as taking it, see the top of this file); the sync runs without
     * the GIL (an os.fdatasync the File would make, or the backend's sync_files); a failed
     * sync goes to Durability.pass_failed (the undo); the settling is SyncBook._settle's
     * (settle() above, or SyncBook.synced itself); the right is given back (directly if
     * nobody sleeps or waits on the condition, else Durability.handed_back) whatever
     * happened. Interrupts land only in the Python calls, and the right is given back after
     * them too. */
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "sync_pass(durability, lsn)");
    PyObject *d = args[0];
    long long lsn, durable, end, lsn_base;
    if (d_globals == NULL || as_ll(args[1], &lsn)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (is_true(args[0], &s_busy) != 0) {  /* a pass runs (the common follower): decide in
                                             * Python, without making anything first */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *result = Py_None;
    PyObject *me = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    PyObject *log = me == NULL ? NULL : get(d, &s_d_log);
    PyObject *backend = log == NULL ? NULL : get(log, &s_backend);
    PyObject *sync_files = backend == NULL ? NULL
        : PyObject_GetAttr(backend, str_sync_files.name);
    PyObject *book = sync_files == NULL ? NULL : get(log, &s_book);
    PyObject *seg = book == NULL ? NULL : get(log, &s_active);
    PyObject *file = seg == NULL || seg == Py_None ? NULL : get(seg, &s_file);
    PyObject *file_sync = file == NULL ? NULL : PyObject_GetAttr(file, str_sync.name);
    PyObject *files = NULL, *o_end = NULL, *o_target = NULL, *published[MAX_SETTLE];
    int count = 0;
    long long fd = -1;
    if (file_sync == NULL)
        goto done;
    PyObject *known = PyDict_GetItemWithError(direct_files, (PyObject *)Py_TYPE(file));
    int direct = bound_to(sync_files, base_sync_files) && bound_to(file_sync, known)
        && PyMethod_GET_SELF(file_sync) == file;
    PyErr_Clear();
    files = PyList_New(1);  /* made now (no allocation after the checks), used if not direct */
    if (files == NULL)
        goto done;
    Py_INCREF(file);
    PyList_SET_ITEM(files, 0, file);
    /* Durability.wait's checks, then the right to run passes: no call into Python, no
     * allocation the collector tracks, from here to the stores of owner and busy. */
    PyObject *active = get(log, &s_active);
    Py_XDECREF(active);
    if (active != seg || is_free(d, &s_d_mutex) != 1 || is_true(d, &s_busy) != 0
            || list_is_empty(d, &s_undone) != 1 || get_ll(log, &s_durable, &durable))
        goto done;
    if (durable >= lsn) {
        result = Py_True;
        goto done;
    }
    if (list_is_empty(book, &s_unsynced) != 1 || get_ll(seg, &s_end, &end)
            || get_ll(seg, &s_lsn_base, &lsn_base))
        goto done;
    /* The descriptor is read only now that nothing can run before the right is taken: a
     * close() (which needs that right) cannot have closed it meanwhile. */
    if (direct && (get_ll(file, &s_fd, &fd) || fd < 0)) {
        PyErr_Clear();
        direct = 0;  /* the File's own sync says what a closed one does */
    }
    long long target = lsn_base | end;  /* SyncBook.sync_targets: the active segment only */
    o_end = PyLong_FromLongLong(end);
    o_target = o_end == NULL ? NULL : PyLong_FromLongLong(target);
    if (o_target == NULL || set(d, &s_owner, me) || set(d, &s_busy, Py_True))
        goto done;
    /* The pass: this thread holds the right to run passes until the hand-back below. */
    double start = monotonic();
    int failed = 0;
    if (direct) {
        int r, err = 0;
        Py_BEGIN_ALLOW_THREADS
        do {
            r = fdatasync((int)fd);
        } while (r != 0 && errno == EINTR);
        err = r != 0 ? errno : 0;
        Py_END_ALLOW_THREADS
        if (err) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            failed = 1;
        }
    } else {
        PyObject *r = PyObject_CallOneArg(sync_files, files);
        failed = r == NULL;
        Py_XDECREF(r);
    }
    if (failed) {
        if (PyErr_ExceptionMatches(PyExc_OSError)) {  /* Durability.pass_locked's except */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL)
                PyException_SetTraceback(value, tb);
            PyObject *r = PyObject_CallMethodOneArg(d, str_pass_failed.name, value);
            Py_XDECREF(r);  /* it raises: a StorageError from the OSError */
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
            if (r != NULL)
                PyErr_SetString(PyExc_AssertionError, "Durability.pass_failed returned");
        }
        result = NULL;
    } else {
        PyObject *floor = PyDict_GetItemWithError(d_globals, str_gather_floor.name);
        PyObject *cap = floor == NULL ? NULL
            : PyDict_GetItemWithError(d_globals, str_recheck.name);
        double took = monotonic() - start, lo = floor == NULL ? -1 : PyFloat_AsDouble(floor),
            hi = cap == NULL ? -1 : PyFloat_AsDouble(cap);
        PyObject *gather = PyErr_Occurred() || cap == NULL ? NULL
            : PyFloat_FromDouble(took < lo ? (lo < hi ? lo : hi) : (took < hi ? took : hi));
        int settled = gather == NULL || set(d, &s_gather, gather) ? -1
            : settle(log, book, seg, target, o_target, published, &count);
        Py_XDECREF(gather);
        if (settled == 0) {  /* any other case: SyncBook.synced, as pass_locked calls it */
            PyObject *pair = PyTuple_Pack(2, seg, o_end);
            PyObject *targets = pair == NULL ? NULL : PyList_New(1);
            if (targets != NULL) {
                PyList_SET_ITEM(targets, 0, pair);
                pair = NULL;
            }
            PyObject *r = targets == NULL ? NULL
                : PyObject_CallMethodObjArgs(book, str_synced.name, o_target, targets, NULL);
            Py_XDECREF(pair);
            Py_XDECREF(targets);
            settled = r == NULL ? -1 : 1;
            Py_XDECREF(r);
        }
        if (settled > 0 && tell_readers(log, published, count) == 0)
            result = Py_True;
        else
            result = NULL;
        count = 0;
    }
    /* The hand-back (wait's finally): with an exception kept across the call. */
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (result == NULL)
        PyErr_Fetch(&type, &value, &tb);
    int quiet = is_free(d, &s_d_mutex) == 1 && list_is_empty(d, &s_sleepers) == 1;
    long long waiting = 1;
    if (quiet && get_ll(d, &s_on_cond, &waiting))
        quiet = 0;
    PyErr_Clear();
    if (quiet && waiting == 0 && set(d, &s_busy, Py_False) == 0) {
        /* released() with nobody to wake: only the store */
    } else {
        PyErr_Clear();
        PyObject *r = PyObject_CallMethodNoArgs(d, str_handed_back.name);
        if (r == NULL) {  /* raised while giving back (an interrupt): that one goes up */
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
            type = value = tb = NULL;
            result = NULL;
            PyErr_Fetch(&type, &value, &tb);
        }
        Py_XDECREF(r);
    }
    if (type != NULL)
        PyErr_Restore(type, value, tb);
done:
    if (result == Py_None)
        PyErr_Clear();
    for (int i = 0; i < count; i++)
        Py_DECREF(published[i]);
    Py_XDECREF(me); Py_XDECREF(log); Py_XDECREF(backend); Py_XDECREF(sync_files);
    Py_XDECREF(book); Py_XDECREF(seg); Py_XDECREF(file); Py_XDECREF(file_sync);
    Py_XDECREF(files); Py_XDECREF(o_end); Py_XDECREF(o_target);
    return Py_XNewRef(result);
}

static PyObject *use_durability(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    /* use_durability(globals, Backend.sync_files, {File class: its sync}, Log._announce):
     * what sync_pass needs of the Python side (see there); None: sync_pass answers None. */
    if (nargs == 1 && args[0] == Py_None) {
        Py_CLEAR(d_globals);
        Py_RETURN_NONE;
    }
    if (nargs != 4 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[2]))
        return PyErr_Format(PyExc_TypeError,
                            "use_durability(globals, sync_files, {File class: sync}, announce)");
    Py_XSETREF(base_sync_files, Py_NewRef(args[1]));
    Py_XSETREF(direct_files, Py_NewRef(args[2]));
    Py_XSETREF(log_announce, Py_NewRef(args[3]));
    Py_XSETREF(d_globals, Py_NewRef(args[0]));
    Py_RETURN_NONE;
}

static PyObject *use_pending(PyObject *mod, PyObject *cls) {
    /* The class of a SyncEach append's pending write (walrus._syncbook.PendingEntries): its
     * instances are made with tp_alloc and filled field by field, so it must be a plain
     * class with __slots__ (no __init__ runs) and no __del__. None: SyncEach appends take
     * the Python path. */
    if (cls == Py_None) {
        Py_CLEAR(pending_type);
        Py_RETURN_NONE;
    }
    if (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_finalize != NULL
            || ((PyTypeObject *)cls)->tp_del != NULL)
        return PyErr_Format(PyExc_TypeError, "use_pending(cls): a class without __del__");
    Py_INCREF(cls);
    Py_XSETREF(pending_type, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"append", (PyCFunction)(void (*)(void))hot_append, METH_FASTCALL | METH_KEYWORDS,
     "append(log, slow, topic, data): Log.append's common case; else slow(log, topic, data)."},
    {"read_next", (PyCFunction)(void (*)(void))hot_read_next, METH_FASTCALL | METH_KEYWORDS,
     "read_next(cursor, slow, topic, ...): Cursor.read_next's common case; else slow(...)."},
    {"entries", (PyCFunction)(void (*)(void))hot_entries, METH_FASTCALL,
     "entries(payloads, first, topic, Entry): the Entry tuples of consecutive payloads."},
    {"slices", (PyCFunction)(void (*)(void))hot_slices, METH_FASTCALL,
     "slices(buf, starts, ends): the bytes of buf[starts[i]:ends[i]], as a list."},
    {"fallbacks", fallbacks, METH_NOARGS,
     "fallbacks() -> {reason: count}: the appends that went to the Python method, and why."},
    {"sync_pass", (PyCFunction)(void (*)(void))hot_sync_pass, METH_FASTCALL,
     "sync_pass(durability, lsn): the lone writer's sync pass; None: Durability.wait decides."},
    {"use_durability", (PyCFunction)(void (*)(void))use_durability, METH_FASTCALL,
     "use_durability(globals, sync_files, {File class: sync}, announce): sync_pass's Python."},
    {"use_pending", use_pending, METH_O,
     "use_pending(cls): the class of a SyncEach append's pending write (None: Python path)."},
    {"direct", direct, METH_NOARGS,
     "direct() -> (lock, array, clmul): the direct reads and the CRC in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hot", NULL, -1, methods};

static int lock_layout_holds(PyTypeObject *type, PyObject *lock) {
    /* 1 if LockLayout is how ``lock`` (a fresh threading.Lock) is laid out: its ``locked``
     * field follows acquire() and release() as locked() does; 0 if not, -1 on error. */
    if (type->tp_basicsize != (Py_ssize_t)sizeof(LockLayout) || ((LockLayout *)lock)->locked)
        return 0;
    PyObject *r = PyObject_CallMethod(lock, "acquire", NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    int held = ((LockLayout *)lock)->locked == 1;
    r = PyObject_CallMethod(lock, "release", NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return held && ((LockLayout *)lock)->locked == 0;
}

static int array_layout_holds(PyObject *a, PyObject *q, PyObject *d) {
    /* 1 if ArrayLayout is how ``a`` (array('Q', [7, 8, 9])) is laid out, 0 if not, -1 on
     * error. The fields are read at their offsets (inside the object: its size is checked
     * first) and compared, never followed: the buffer API says where the items are, how many
     * and of which type, and ``ob_exports`` must count the buffer lent; ``ob_descr`` must be
     * the same in another array('Q'), ``q``, and differ in an array('d'), ``d``, as a
     * pointer into the module's table of type codes does. */
    ArrayLayout *arr = (ArrayLayout *)a;
    if (Py_TYPE(a)->tp_basicsize != (Py_ssize_t)sizeof(ArrayLayout)
            || !Py_IS_TYPE(q, Py_TYPE(a)) || !Py_IS_TYPE(d, Py_TYPE(a)))
        return 0;
    Py_buffer view;
    if (PyObject_GetBuffer(a, &view, PyBUF_FORMAT))
        return -1;
    uint64_t items[3] = {0, 0, 0};
    int same = view.buf == (void *)arr->ob_item && view.len == 24 && view.itemsize == 8
        && view.format != NULL && strcmp(view.format, "Q") == 0 && Py_SIZE(a) == 3
        && arr->allocated >= 3 && arr->ob_exports == 1;
    if (same)
        memcpy(items, view.buf, sizeof items);
    PyBuffer_Release(&view);
    return same && arr->ob_exports == 0 && items[0] == 7 && items[1] == 8 && items[2] == 9
        && arr->ob_descr == ((ArrayLayout *)q)->ob_descr
        && arr->ob_descr != ((ArrayLayout *)d)->ob_descr;
}

static PyObject *direct(PyObject *mod, PyObject *unused) {
    /* (lock, array, clmul): whether threading.Lock's and array.array's fields are read
     * directly, and whether CRCs are computed by carry-less multiplication (record.h). */
    return Py_BuildValue("(OOO)", lock_type != NULL ? Py_True : Py_False,
                         array_direct ? Py_True : Py_False, use_clmul() ? Py_True : Py_False);
}

static int check_layouts(void) {
    /* Find which CPython objects' fields may be read directly on this interpreter (see
     * LockLayout and ArrayLayout); -1 on error. WALRUS_HOT_LAYOUTS=0 reads none. */
    const char *env = getenv("WALRUS_HOT_LAYOUTS");
    int allowed = PY_VERSION_HEX < 0x030D0000 && !(env != NULL && strcmp(env, "0") == 0);
    PyObject *array_module = PyImport_ImportModule("array");
    if (array_module == NULL)
        return -1;
    array_type = (PyTypeObject *)PyObject_GetAttrString(array_module, "array");
    PyObject *a = array_type == NULL ? NULL
        : PyObject_CallFunction((PyObject *)array_type, "s[iii]", "Q", 7, 8, 9);
    PyObject *q = a == NULL ? NULL : PyObject_CallFunction((PyObject *)array_type, "s", "Q");
    PyObject *d = q == NULL ? NULL : PyObject_CallFunction((PyObject *)array_type, "s", "d");
    Py_DECREF(array_module);
    if (d == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(q);
        return -1;
    }
    array_append = PyObject_GetAttrString((PyObject *)array_type, "append");
    int holds = array_append == NULL ? -1 : allowed ? array_layout_holds(a, q, d) : 0;
    if (holds == 1)
        q_descr = ((ArrayLayout *)a)->ob_descr;
    Py_DECREF(a);
    Py_DECREF(q);
    Py_DECREF(d);
    if (holds < 0)
        return -1;
    array_direct = holds;
    PyObject *thread = PyImport_ImportModule("_thread");
    if (thread == NULL)
        return -1;
    PyObject *lock = PyObject_CallMethod(thread, "allocate_lock", NULL);
    Py_DECREF(thread);
    if (lock == NULL)
        return -1;
    holds = allowed ? lock_layout_holds(Py_TYPE(lock), lock) : 0;
    if (holds == 1) {
        lock_type = Py_TYPE(lock);
        Py_INCREF(lock_type);
    }
    Py_DECREF(lock);
    return holds < 0 ? -1 : 0;
}

PyMODINIT_FUNC PyInit__hot(void) {
    struct { Name *slot; const char *name; } names[] = {
        {&s_by_name, "_by_name"}, {&s_mutex, "_mutex"}, {&s_locked, "locked"},
        {&s_closed, "closed"}, {&s_sync_each, "_sync_each"}, {&s_on_visible, "_on_visible"},
        {&s_active, "_active"}, {&s_end, "end"}, {&s_check_at, "check_at"},
        {&s_next_seq, "next_seq"}, {&s_address, "address"}, {&s_durable, "_durable"},
        {&s_salt, "salt"}, {&s_tid, "tid"}, {&s_lsn_base, "lsn_base"}, {&s_nbytes, "nbytes"},
        {&s_visible, "visible"}, {&s_lsns, "lsns"}, {&s_append, "append"},
        {&s_topics, "_topics"}, {&s_named, "named"}, {&s_topic, "topic"},
        {&s_read_lock, "read_lock"}, {&s_cursor, "cursor"}, {&s_ahead, "ahead"},
        {&s_ahead_seq, "ahead_seq"}, {&s_lazy_every, "_lazy_every"},
        {&s_persisted, "persisted"}, {&s_view, "view"}, {&s_checkpoint, "checkpoint"},
        {&s_consumer, "consumer"}, {&s_timeout, "timeout"},
        {&s_p_start, "start"}, {&s_p_end, "end"}, {&s_p_t, "t"}, {&s_p_seq, "seq"},
        {&s_p_count, "count"}, {&s_p_size, "size"}, {&s_p_announce, "announce"},
        {&s_p_unlist, "unlist"}, {&s_announce, "_announce"}, {&s_book, "_book"},
        {&s_pending, "pending"}, {&s_wait_durable, "_wait_durable"},
        {&s_d_log, "log"}, {&s_d_mutex, "mutex"}, {&s_busy, "busy"}, {&s_owner, "owner"},
        {&s_undone, "undone"}, {&s_sleepers, "sleepers"}, {&s_on_cond, "on_cond"},
        {&s_gather, "gather"}, {&s_backend, "_backend"}, {&s_file, "file"}, {&s_fd, "_fd"},
        {&s_unsynced, "unsynced"}, {&s_frozen, "_frozen"}, {&s_sealed, "sealed"},
        {&s_abandon_at, "_abandon_at"}, {&s_read_only, "_read_only"}, {&s_size, "size"},
        {&str_sync_files, "sync_files"}, {&str_sync, "sync"}, {&str_handed_back, "handed_back"},
        {&str_pass_failed, "pass_failed"}, {&str_synced, "synced"},
        {&str_gather_floor, "GATHER_FLOOR"}, {&str_recheck, "RECHECK"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        names[i].slot->name = PyUnicode_InternFromString(names[i].name);
        if (names[i].slot->name == NULL)
            return NULL;
    }
    zero = PyLong_FromLong(0);
    one = PyLong_FromLong(1);
    if (zero == NULL || one == NULL)
        return NULL;
    PyObject *mmap_module = PyImport_ImportModule("mmap");
    if (mmap_module == NULL)
        return NULL;
    mmap_type = (PyTypeObject *)PyObject_GetAttrString(mmap_module, "mmap");
    Py_DECREF(mmap_module);
    if (mmap_type == NULL || check_layouts())
        return NULL;
    return PyModule_Create(&module);
}
