/*
 * Optional compiled helpers for the two loops that run once per event in the
 * encoders. Each has a pure-Python twin that gives the same result
 * (`sample_lines` in metricstream.codecs._columns and
 * `fields_text` in metricstream.codecs.lineprotocol); the package uses this
 * module when it was built and METRICSTREAM_PURE_PYTHON is not set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Longest decimal int64, with its sign: -9223372036854775808. */
#define INT64_DIGITS 20

static Py_ssize_t
write_int64(char *out, long long value)
{
    char digits[INT64_DIGITS];
    Py_ssize_t n = 0, written = 0;
    unsigned long long magnitude;
    if (value < 0) {
        out[written++] = '-';
        magnitude = 0ULL - (unsigned long long)value;
    }
    else {
        magnitude = (unsigned long long)value;
    }
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    while (n) {
        out[written++] = digits[--n];
    }
    return written;
}

/*
 * sample_lines(befores, values, between, timestamps, after) -> bytes
 *
 * One line per event: befores[i], the i-th item of the JSON array `values`,
 * between, timestamps[i] in decimal, after; newline-joined, no trailing
 * newline. The items of `values` hold no comma (numbers and booleans).
 */
static PyObject *
sample_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "sample_lines takes 5 arguments");
        return NULL;
    }
    PyObject *befores = args[0], *values = args[1], *between = args[2];
    PyObject *timestamps = args[3], *after = args[4];
    if (!PyList_CheckExact(befores) || !PyList_CheckExact(timestamps) ||
        !PyBytes_CheckExact(values) || !PyBytes_CheckExact(between) ||
        !PyBytes_CheckExact(after)) {
        PyErr_SetString(PyExc_TypeError,
                        "sample_lines takes (list, bytes, bytes, list, bytes)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(befores);
    if (PyList_GET_SIZE(timestamps) != count) {
        PyErr_SetString(PyExc_ValueError, "befores and timestamps differ in length");
        return NULL;
    }
    const char *text = PyBytes_AS_STRING(values);
    Py_ssize_t text_size = PyBytes_GET_SIZE(values);
    if (text_size < 2 || text[0] != '[' || text[text_size - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "values is not a JSON array");
        return NULL;
    }
    Py_ssize_t between_size = PyBytes_GET_SIZE(between);
    Py_ssize_t after_size = PyBytes_GET_SIZE(after);
    Py_ssize_t bound = text_size;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *before = PyList_GET_ITEM(befores, i);
        if (!PyBytes_Check(before)) {
            PyErr_SetString(PyExc_TypeError, "befores holds something other than bytes");
            return NULL;
        }
        bound += PyBytes_GET_SIZE(before);
    }
    bound += count * (between_size + INT64_DIGITS + after_size + 1);
    PyObject *result = PyBytes_FromStringAndSize(NULL, bound);
    if (result == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
    Py_ssize_t pos = 0, cursor = 1, end = text_size - 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *before = PyList_GET_ITEM(befores, i);
        Py_ssize_t before_size = PyBytes_GET_SIZE(before);
        memcpy(out + pos, PyBytes_AS_STRING(before), before_size);
        pos += before_size;
        const char *comma = memchr(text + cursor, ',', end - cursor);
        Py_ssize_t stop = comma == NULL ? end : comma - text;
        if ((comma == NULL) != (i == count - 1) || stop == cursor) {
            Py_DECREF(result);
            PyErr_SetString(PyExc_ValueError, "values does not hold one item per line");
            return NULL;
        }
        memcpy(out + pos, text + cursor, stop - cursor);
        pos += stop - cursor;
        cursor = stop + 1;
        memcpy(out + pos, PyBytes_AS_STRING(between), between_size);
        pos += between_size;
        PyObject *timestamp = PyList_GET_ITEM(timestamps, i);
        if (!PyLong_CheckExact(timestamp)) {
            /* Anything else could run Python code that changes the lists. */
            Py_DECREF(result);
            PyErr_SetString(PyExc_TypeError, "timestamps holds something other than int");
            return NULL;
        }
        int overflow = 0;
        long long stamp = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
        if (overflow || (stamp == -1 && PyErr_Occurred())) {
            Py_DECREF(result);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_OverflowError, "a timestamp is outside int64");
            }
            return NULL;
        }
        pos += write_int64(out + pos, stamp);
        memcpy(out + pos, PyBytes_AS_STRING(after), after_size);
        pos += after_size;
        if (i != count - 1) {
            out[pos++] = '\n';
        }
    }
    if (count == 0 && end != 1) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_ValueError, "values does not hold one item per line");
        return NULL;
    }
    if (_PyBytes_Resize(&result, pos) < 0) {
        return NULL;
    }
    return result;
}

/* A growing byte buffer: on the stack until it outgrows it. */
typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    char local[512];
} Buffer;

static int
buffer_add(Buffer *buffer, const char *bytes, Py_ssize_t size)
{
    if (buffer->size + size > buffer->capacity) {
        Py_ssize_t capacity = (buffer->size + size) * 2;
        char *grown = PyMem_Malloc(capacity);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(grown, buffer->data, buffer->size);
        if (buffer->data != buffer->local) {
            PyMem_Free(buffer->data);
        }
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, bytes, size);
    buffer->size += size;
    return 0;
}

static int
buffer_add_str(Buffer *buffer, PyObject *text)
{
    Py_ssize_t size;
    const char *bytes = PyUnicode_AsUTF8AndSize(text, &size);
    return bytes == NULL ? -1 : buffer_add(buffer, bytes, size);
}

/* Append the value part of one pair (see fields_text); -1 on error. */
static int
add_value(Buffer *buffer, PyObject *value, PyObject *format_value)
{
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        if (number > -1e6 && number < 1e6) {
            /* repr() without the ".0" it adds to a whole number. */
            char *shown = PyOS_double_to_string(number, 'r', 0, 0, NULL);
            if (shown == NULL) {
                return -1;
            }
            int status = buffer_add(buffer, shown, (Py_ssize_t)strlen(shown));
            PyMem_Free(shown);
            return status;
        }
    }
    else if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(number == -1 && PyErr_Occurred())) {
            char digits[INT64_DIGITS + 1];
            Py_ssize_t size = write_int64(digits, number);
            digits[size++] = 'i';
            return buffer_add(buffer, digits, size);
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    PyObject *shown = PyObject_CallOneArg(format_value, value);
    if (shown == NULL) {
        return -1;
    }
    int status = PyUnicode_Check(shown) ? buffer_add_str(buffer, shown) : -1;
    if (status < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "format_value returned something other than str");
    }
    Py_DECREF(shown);
    return status;
}

/* Append one "key=value" pair (see fields_text); -1 on error. */
static int
add_pair(Buffer *buffer, PyObject *key, PyObject *value, PyObject *prefixes,
         PyObject *make_prefix, PyObject *format_value)
{
    PyObject *prefix = PyDict_GetItemWithError(prefixes, key);
    if (prefix != NULL) {
        Py_INCREF(prefix);
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    else if ((prefix = PyObject_CallOneArg(make_prefix, key)) == NULL) {
        return -1;
    }
    int status = PyUnicode_Check(prefix) ? buffer_add_str(buffer, prefix) : -1;
    if (status < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "a field prefix is not a str");
    }
    Py_DECREF(prefix);
    return status < 0 ? -1 : add_value(buffer, value, format_value);
}

/*
 * fields_text(prefixes, make_prefix, format_value, fields) -> str
 *
 * The field set of a line protocol entry: "key=value" pairs in order,
 * comma-separated. A float in (-1e6, 1e6) is its repr without a trailing
 * ".0", an int is followed by "i"; any other value goes to format_value.
 * A key missing from the dict `prefixes` goes to make_prefix.
 */
static PyObject *
fields_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fields_text takes 4 arguments");
        return NULL;
    }
    PyObject *prefixes = args[0], *make_prefix = args[1];
    PyObject *format_value = args[2], *fields = args[3];
    if (!PyDict_Check(fields) || !PyDict_Check(prefixes)) {
        PyErr_SetString(PyExc_TypeError, "fields_text takes (dict, callable, callable, dict)");
        return NULL;
    }
    Buffer buffer;
    buffer.data = buffer.local;
    buffer.size = 0;
    buffer.capacity = sizeof(buffer.local);
    Py_ssize_t position = 0;
    PyObject *key, *value, *result = NULL;
    int status = 0;
    while (status == 0 && PyDict_Next(fields, &position, &key, &value)) {
        /* Held across the calls below, which may run Python code. */
        Py_INCREF(key);
        Py_INCREF(value);
        if (buffer.size) {
            status = buffer_add(&buffer, ",", 1);
        }
        if (status == 0) {
            status = add_pair(&buffer, key, value, prefixes, make_prefix, format_value);
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    if (status == 0) {
        result = PyUnicode_DecodeUTF8(buffer.data, buffer.size, "strict");
    }
    if (buffer.data != buffer.local) {
        PyMem_Free(buffer.data);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"sample_lines", (PyCFunction)(void (*)(void))sample_lines, METH_FASTCALL,
     "Join one line per sample from its columns (see metricstream.codecs._columns)."},
    {"fields_text", (PyCFunction)(void (*)(void))fields_text, METH_FASTCALL,
     "The field set of a line protocol entry (see metricstream.codecs.lineprotocol)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "metricstream.codecs._speedups",
    "Optional compiled helpers for the encoders' per-event loops.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
