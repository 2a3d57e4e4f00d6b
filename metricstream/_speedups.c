/*
 * Optional compiled helpers for the loops that run once per event or per
 * field: checking an event's fields and finding its shared tags when it is
 * built, one by one or a list of them at once (`checked_fields`,
 * `fields_needing_checks`, `items_key`: twins in metricstream._validate and
 * metricstream.event), taking a batch's fields as columns (`field_columns`:
 * metricstream.columns), writing line protocol entries and a batch's lines
 * (`entry_text`: metricstream.codecs.lineprotocol; `join_lines`:
 * metricstream.codecs._lines), and the event store's event ids
 * (`event_ids`: metricstream.server._ids). Each has a pure-Python twin that
 * gives the same result; the package uses this module when it was built and
 * METRICSTREAM_PURE_PYTHON is not set (metricstream._compiled).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
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
 * The fast check of one field dict: 1 when `fields` is an exact dict whose
 * every key is an exact str in the set `valid_keys` (and not in `excluded`,
 * when given) and every value is a finite float, an int in int64, a bool, a
 * `uint_type`, or an ASCII str of at most `max_chars` characters (none a
 * subclass); 0 when it is not; -1 with an exception set.
 */
static int
fields_pass(PyObject *fields, PyObject *valid_keys, PyObject *uint_type, Py_ssize_t max_chars,
            PyObject *excluded)
{
    if (!PyDict_CheckExact(fields)) {
        return 0;
    }
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(fields, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            return 0;
        }
        /* An exact str hashes and compares without running Python code. */
        int known = PySet_Contains(valid_keys, key);
        if (known <= 0) {
            return known;
        }
        if (excluded != NULL) {
            int refused = PySet_Contains(excluded, key);
            if (refused != 0) {
                return refused < 0 ? -1 : 0;
            }
        }
        PyTypeObject *type = Py_TYPE(value);
        if (type == &PyFloat_Type) {
            if (!isfinite(PyFloat_AS_DOUBLE(value))) {
                return 0;
            }
        }
        else if (type == &PyLong_Type) {
            int overflow = 0;
            long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (number == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (overflow) {
                return 0;
            }
        }
        else if (type == &PyUnicode_Type) {
            if (PyUnicode_GET_LENGTH(value) > max_chars || !PyUnicode_IS_ASCII(value)) {
                return 0;
            }
        }
        else if (type != &PyBool_Type && (PyObject *)type != uint_type) {
            return 0;
        }
    }
    return 1;
}

/*
 * checked_fields(fields, valid_keys, uint_type, max_chars) -> dict or None
 *
 * A copy of the dict `fields` when it passes the fast check (`fields_pass`);
 * otherwise None, and the caller checks the slow way.
 */
static PyObject *
checked_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyAnySet_Check(args[1]) || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "checked_fields takes (dict, set, type, int)");
        return NULL;
    }
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[3]);
    if (max_chars == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int passed = fields_pass(args[0], args[1], args[2], max_chars, NULL);
    if (passed < 0) {
        return NULL;
    }
    if (!passed) {
        Py_RETURN_NONE;
    }
    return PyDict_Copy(args[0]);
}

/*
 * fields_needing_checks(dicts, valid_keys, uint_type, max_chars, excluded) -> list[int]
 *
 * The positions of the items of the list `dicts` that do not pass the fast
 * check (`fields_pass`, with the keys of the set `excluded` refused), in
 * order: the caller checks those the slow way.
 */
static PyObject *
fields_needing_checks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[0]) || !PyAnySet_Check(args[1]) ||
        !PyLong_Check(args[3]) || !PyAnySet_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "fields_needing_checks takes (list, set, type, int, set)");
        return NULL;
    }
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[3]);
    if (max_chars == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *dicts = args[0];
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        return NULL;
    }
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(dicts); index++) {
        PyObject *item = PyList_GET_ITEM(dicts, index);
        /* Held across the check, which may run Python code (a set's __eq__). */
        Py_INCREF(item);
        int passed = fields_pass(item, args[1], args[2], max_chars, args[4]);
        Py_DECREF(item);
        if (passed < 0) {
            Py_DECREF(found);
            return NULL;
        }
        if (!passed) {
            PyObject *position = PyLong_FromSsize_t(index);
            if (position == NULL || PyList_Append(found, position) < 0) {
                Py_XDECREF(position);
                Py_DECREF(found);
                return NULL;
            }
            Py_DECREF(position);
        }
    }
    return found;
}

/*
 * items_key(tags) -> tuple or None
 *
 * tuple(tags.items()) for a dict (not a subclass) whose keys and values are
 * all str (not a subclass); otherwise None.
 */
static PyObject *
items_key(PyObject *module, PyObject *tags)
{
    if (!PyDict_CheckExact(tags)) {
        Py_RETURN_NONE;
    }
    PyObject *key_tuple = PyTuple_New(PyDict_GET_SIZE(tags));
    if (key_tuple == NULL) {
        return NULL;
    }
    Py_ssize_t position = 0, i = 0;
    PyObject *key, *value;
    while (PyDict_Next(tags, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(value)) {
            Py_DECREF(key_tuple);
            Py_RETURN_NONE;
        }
        PyObject *pair = PyTuple_Pack(2, key, value);
        if (pair == NULL) {
            Py_DECREF(key_tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(key_tuple, i++, pair);
    }
    return key_tuple;
}

/*
 * field_columns(fields) -> (keys, columns) or None
 *
 * When every item of the list `fields` is a dict (not a subclass) with the
 * keys of the first (str, not a subclass, in the first), in the same order:
 * the keys as a tuple and one list of values per key, as a tuple.
 * Otherwise None.
 */
static PyObject *
field_columns(PyObject *module, PyObject *fields)
{
    if (!PyList_CheckExact(fields)) {
        PyErr_SetString(PyExc_TypeError, "field_columns takes a list");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(fields);
    PyObject *first = count ? PyList_GET_ITEM(fields, 0) : NULL;
    if (first == NULL || !PyDict_CheckExact(first) || PyDict_GET_SIZE(first) == 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t width = PyDict_GET_SIZE(first);
    PyObject *keys = PyTuple_New(width);
    PyObject *columns = PyTuple_New(width);
    if (keys == NULL || columns == NULL) {
        goto error;
    }
    Py_ssize_t position = 0, j = 0;
    PyObject *key, *value;
    while (PyDict_Next(first, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            goto differ;
        }
        Py_INCREF(key);
        PyTuple_SET_ITEM(keys, j, key);
        PyObject *column = PyList_New(count);
        if (column == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(columns, j, column);
        j++;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(fields, i);
        if (!PyDict_CheckExact(row) || PyDict_GET_SIZE(row) != width) {
            goto differ;
        }
        position = 0;
        j = 0;
        while (PyDict_Next(row, &position, &key, &value)) {
            PyObject *expected = PyTuple_GET_ITEM(keys, j);
            /* Comparing the characters of two str runs no Python code. */
            if (key != expected &&
                (!PyUnicode_Check(key) || PyUnicode_Compare(key, expected) != 0)) {
                goto differ;
            }
            Py_INCREF(value);
            PyList_SET_ITEM(PyTuple_GET_ITEM(columns, j), i, value);
            j++;
        }
    }
    PyObject *result = PyTuple_Pack(2, keys, columns);
    Py_DECREF(keys);
    Py_DECREF(columns);
    return result;
differ:
    Py_XDECREF(keys);
    Py_XDECREF(columns);
    Py_RETURN_NONE;
error:
    Py_XDECREF(keys);
    Py_XDECREF(columns);
    return NULL;
}

/* A column of value texts (see join_lines): a JSON array or a list of bytes. */
typedef struct {
    PyObject *list;        /* the list, or NULL for an array */
    const char *text;      /* the array */
    Py_ssize_t cursor, end;
} Column;

/* Check the arguments of join_lines, fill `columns` and return the output's size bound. */
static Py_ssize_t
join_bound(PyObject *befores, PyObject *column_list, PyObject *separators,
           PyObject *timestamps, PyObject *afters, Column *columns)
{
    Py_ssize_t count = PyList_GET_SIZE(befores);
    Py_ssize_t width = PyList_GET_SIZE(column_list);
    Py_ssize_t bound = 0, per_line = INT64_DIGITS + 1;
    if (PyList_GET_SIZE(separators) != width) {
        PyErr_SetString(PyExc_ValueError, "one separator per column is needed");
        return -1;
    }
    if (PyList_GET_SIZE(timestamps) != count ||
        (PyList_CheckExact(afters) && PyList_GET_SIZE(afters) != count)) {
        PyErr_SetString(PyExc_ValueError, "befores, timestamps and afters differ in length");
        return -1;
    }
    for (Py_ssize_t j = 0; j < width; j++) {
        PyObject *column = PyList_GET_ITEM(column_list, j);
        PyObject *separator = PyList_GET_ITEM(separators, j);
        if (!PyBytes_CheckExact(separator)) {
            PyErr_SetString(PyExc_TypeError, "separators holds something other than bytes");
            return -1;
        }
        per_line += PyBytes_GET_SIZE(separator);
        if (PyBytes_CheckExact(column)) {
            Py_ssize_t size = PyBytes_GET_SIZE(column);
            const char *text = PyBytes_AS_STRING(column);
            if (size < 2 || text[0] != '[' || text[size - 1] != ']' ||
                (count == 0) != (size == 2)) {
                PyErr_SetString(PyExc_ValueError, "a column does not hold one value per line");
                return -1;
            }
            columns[j].list = NULL;
            columns[j].text = text;
            columns[j].cursor = 1;
            columns[j].end = size - 1;
            bound += size;
        }
        else if (PyList_CheckExact(column) && PyList_GET_SIZE(column) == count) {
            columns[j].list = column;
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *item = PyList_GET_ITEM(column, i);
                if (!PyBytes_CheckExact(item)) {
                    PyErr_SetString(PyExc_TypeError, "a column holds something other than bytes");
                    return -1;
                }
                bound += PyBytes_GET_SIZE(item);
            }
        }
        else {
            PyErr_SetString(PyExc_ValueError, "a column does not hold one value per line");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *before = PyList_GET_ITEM(befores, i);
        PyObject *after = PyList_CheckExact(afters) ? PyList_GET_ITEM(afters, i) : afters;
        if (!PyBytes_CheckExact(before) || !PyBytes_CheckExact(after)) {
            PyErr_SetString(PyExc_TypeError, "befores or afters hold something other than bytes");
            return -1;
        }
        bound += PyBytes_GET_SIZE(before) + PyBytes_GET_SIZE(after) + per_line;
    }
    return bound;
}

/* Copy the next value of `column` (line `i` of `count`); -1 if it holds another number. */
static Py_ssize_t
copy_value(char *out, Column *column, Py_ssize_t i, Py_ssize_t count)
{
    if (column->list != NULL) {
        PyObject *item = PyList_GET_ITEM(column->list, i);
        Py_ssize_t size = PyBytes_GET_SIZE(item);
        memcpy(out, PyBytes_AS_STRING(item), size);
        return size;
    }
    const char *text = column->text;
    const char *comma = memchr(text + column->cursor, ',', column->end - column->cursor);
    Py_ssize_t stop = comma == NULL ? column->end : comma - text;
    if ((comma == NULL) != (i == count - 1) || stop == column->cursor) {
        PyErr_SetString(PyExc_ValueError, "a column does not hold one value per line");
        return -1;
    }
    Py_ssize_t size = stop - column->cursor;
    memcpy(out, text + column->cursor, size);
    column->cursor = stop + 1;
    return size;
}

/*
 * join_lines(befores, columns, separators, timestamps, afters) -> bytes
 *
 * Line i is befores[i], then for each column its i-th value followed by
 * that column's separator, then timestamps[i] in decimal, then afters (the
 * same bytes for every line, or afters[i]); newline-joined, no trailing
 * newline. A column is a JSON array whose items hold no comma (numbers and
 * booleans), or a list of one bytes per line.
 */
static PyObject *
join_lines(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "join_lines takes 5 arguments");
        return NULL;
    }
    PyObject *befores = args[0], *column_list = args[1], *separators = args[2];
    PyObject *timestamps = args[3], *afters = args[4];
    if (!PyList_CheckExact(befores) || !PyList_CheckExact(column_list) ||
        !PyList_CheckExact(separators) || !PyList_CheckExact(timestamps) ||
        !(PyBytes_CheckExact(afters) || PyList_CheckExact(afters))) {
        PyErr_SetString(PyExc_TypeError,
                        "join_lines takes (list, list, list, list, bytes or list)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(befores);
    Py_ssize_t width = PyList_GET_SIZE(column_list);
    Column *columns = PyMem_Malloc(sizeof(Column) * (width ? width : 1));
    if (columns == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    Py_ssize_t bound = join_bound(befores, column_list, separators, timestamps, afters, columns);
    if (bound < 0 || (result = PyBytes_FromStringAndSize(NULL, bound)) == NULL) {
        PyMem_Free(columns);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
    Py_ssize_t pos = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *before = PyList_GET_ITEM(befores, i);
        memcpy(out + pos, PyBytes_AS_STRING(before), PyBytes_GET_SIZE(before));
        pos += PyBytes_GET_SIZE(before);
        for (Py_ssize_t j = 0; j < width; j++) {
            Py_ssize_t size = copy_value(out + pos, &columns[j], i, count);
            if (size < 0) {
                goto error;
            }
            pos += size;
            PyObject *separator = PyList_GET_ITEM(separators, j);
            memcpy(out + pos, PyBytes_AS_STRING(separator), PyBytes_GET_SIZE(separator));
            pos += PyBytes_GET_SIZE(separator);
        }
        PyObject *timestamp = PyList_GET_ITEM(timestamps, i);
        if (!PyLong_CheckExact(timestamp)) {
            /* Anything else could run Python code that changes the lists. */
            PyErr_SetString(PyExc_TypeError, "timestamps holds something other than int");
            goto error;
        }
        int overflow = 0;
        long long stamp = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
        if (overflow || (stamp == -1 && PyErr_Occurred())) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_OverflowError, "a timestamp is outside int64");
            }
            goto error;
        }
        pos += write_int64(out + pos, stamp);
        PyObject *after = PyList_CheckExact(afters) ? PyList_GET_ITEM(afters, i) : afters;
        memcpy(out + pos, PyBytes_AS_STRING(after), PyBytes_GET_SIZE(after));
        pos += PyBytes_GET_SIZE(after);
        if (i != count - 1) {
            out[pos++] = '\n';
        }
    }
    PyMem_Free(columns);
    if (_PyBytes_Resize(&result, pos) < 0) {
        return NULL;
    }
    return result;
error:
    PyMem_Free(columns);
    Py_DECREF(result);
    return NULL;
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

/* Append the value part of one pair (see entry_text); -1 on error. */
static int
add_value(Buffer *buffer, PyObject *value, PyObject *format_value)
{
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        if (number > -1e6 && number < 1e6) {
            double scaled = number * 1000.0;
            long long thousandths = (long long)scaled;
            if ((double)thousandths == scaled && (double)thousandths / 1000.0 == number) {
                /* At most three decimals that read back as this float: the
                   shortest form, which repr() would find too. */
                char text[INT64_DIGITS + 8];
                Py_ssize_t size = 0;
                unsigned long long magnitude = thousandths < 0
                    ? 0ULL - (unsigned long long)thousandths : (unsigned long long)thousandths;
                if (signbit(number)) {
                    text[size++] = '-';
                }
                size += write_int64(text + size, (long long)(magnitude / 1000));
                unsigned int fraction = (unsigned int)(magnitude % 1000);
                if (fraction) {
                    text[size++] = '.';
                    text[size++] = (char)('0' + fraction / 100);
                    if (fraction % 100) {
                        text[size++] = (char)('0' + fraction / 10 % 10);
                        if (fraction % 10) {
                            text[size++] = (char)('0' + fraction % 10);
                        }
                    }
                }
                return buffer_add(buffer, text, size);
            }
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

/* Append one "key=value" pair (see entry_text); -1 on error. */
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
 * entry_text(prefixes, make_prefix, format_value, head, fields, timestamp) -> str
 *
 * A line protocol entry: the str `head` (measurement and tags, escaped), a
 * space, the field set, a space and the int `timestamp` (in int64). The
 * field set is "key=value" pairs in order, comma-separated: a float in
 * (-1e6, 1e6) is its repr without a trailing ".0", an int is followed by
 * "i"; any other value goes to format_value. A key missing from the dict
 * `prefixes` goes to make_prefix.
 */
static PyObject *
entry_text(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "entry_text takes 6 arguments");
        return NULL;
    }
    PyObject *prefixes = args[0], *make_prefix = args[1], *format_value = args[2];
    PyObject *head = args[3], *fields = args[4], *timestamp = args[5];
    if (!PyDict_Check(fields) || !PyDict_Check(prefixes) || !PyUnicode_Check(head) ||
        !PyLong_CheckExact(timestamp)) {
        PyErr_SetString(PyExc_TypeError,
                        "entry_text takes (dict, callable, callable, str, dict, int)");
        return NULL;
    }
    int overflow = 0;
    long long stamp = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
    if (overflow || (stamp == -1 && PyErr_Occurred())) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_OverflowError, "the timestamp is outside int64");
        }
        return NULL;
    }
    Buffer buffer;
    buffer.data = buffer.local;
    buffer.size = 0;
    buffer.capacity = sizeof(buffer.local);
    int status = buffer_add_str(&buffer, head);
    if (status == 0) {
        status = buffer_add(&buffer, " ", 1);
    }
    Py_ssize_t position = 0, pairs = 0;
    PyObject *key, *value, *result = NULL;
    while (status == 0 && PyDict_Next(fields, &position, &key, &value)) {
        /* Held across the calls below, which may run Python code. */
        Py_INCREF(key);
        Py_INCREF(value);
        if (pairs++) {
            status = buffer_add(&buffer, ",", 1);
        }
        if (status == 0) {
            status = add_pair(&buffer, key, value, prefixes, make_prefix, format_value);
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    if (status == 0) {
        char digits[INT64_DIGITS + 1];
        digits[0] = ' ';
        status = buffer_add(&buffer, digits, 1 + write_int64(digits + 1, stamp));
    }
    if (status == 0) {
        result = PyUnicode_DecodeUTF8(buffer.data, buffer.size, "strict");
    }
    if (buffer.data != buffer.local) {
        PyMem_Free(buffer.data);
    }
    return result;
}

/*
 * event_ids(timestamps, generation, first) -> list of str
 *
 * The event id of each timestamp of the list (int64 nanoseconds), with the
 * counters first, first + 1, ...: 16 hexadecimal digits of the timestamp
 * plus 2**63, 6 of the generation, 10 of the counter
 * (metricstream.query._eventid). The twin is
 * metricstream.server._ids.EventIds.format_all.
 */
#define EVENT_ID_CHARS 32
#define GENERATION_LIMIT (1LL << 24)
#define COUNTER_LIMIT (1LL << 40)

static void
write_hex(char *out, unsigned long long value, int digits)
{
    static const char hex[] = "0123456789abcdef";
    while (digits--) {
        out[digits] = hex[value & 15];
        value >>= 4;
    }
}

static PyObject *
event_ids(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "event_ids takes timestamps, generation and first");
        return NULL;
    }
    PyObject *timestamps = args[0];
    if (!PyList_CheckExact(timestamps) || !PyLong_Check(args[1]) || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "event_ids takes a list and two ints");
        return NULL;
    }
    long long generation = PyLong_AsLongLong(args[1]);
    long long first = PyLong_AsLongLong(args[2]);
    if ((generation == -1 || first == -1) && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(timestamps);
    if (generation < 1 || generation >= GENERATION_LIMIT || first < 1 ||
        first > COUNTER_LIMIT - 1 - count) {
        PyErr_SetString(PyExc_ValueError, "the generation or a counter is out of range");
        return NULL;
    }
    char text[EVENT_ID_CHARS];
    write_hex(text + 16, (unsigned long long)generation, 6);
    PyObject *ids = PyList_New(count);
    if (ids == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(timestamps, i);
        if (!PyLong_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "a timestamp is not an int");
            goto error;
        }
        long long timestamp = PyLong_AsLongLong(item);
        if (timestamp == -1 && PyErr_Occurred()) {
            goto error;
        }
        write_hex(text, (unsigned long long)timestamp + (1ULL << 63), 16);
        write_hex(text + 22, (unsigned long long)(first + i), 10);
        PyObject *id = PyUnicode_New(EVENT_ID_CHARS, 127);
        if (id == NULL) {
            goto error;
        }
        memcpy(PyUnicode_1BYTE_DATA(id), text, EVENT_ID_CHARS);
        PyList_SET_ITEM(ids, i, id);
    }
    return ids;
error:
    Py_DECREF(ids);
    return NULL;
}

static PyMethodDef methods[] = {
    {"checked_fields", (PyCFunction)(void (*)(void))checked_fields, METH_FASTCALL,
     "A copy of a field dict whose keys and values need no further check, or None."},
    {"fields_needing_checks", (PyCFunction)(void (*)(void))fields_needing_checks, METH_FASTCALL,
     "The positions of the field dicts of a list that the fast check does not accept."},
    {"items_key", (PyCFunction)items_key, METH_O,
     "tuple(tags.items()) for a dict of str, or None."},
    {"field_columns", (PyCFunction)field_columns, METH_O,
     "The fields of a batch as columns, when every event has the same keys (see metricstream.columns)."},
    {"join_lines", (PyCFunction)(void (*)(void))join_lines, METH_FASTCALL,
     "Join one line per event from columns of texts (see metricstream.codecs._lines)."},
    {"entry_text", (PyCFunction)(void (*)(void))entry_text, METH_FASTCALL,
     "A line protocol entry: head, field set, timestamp (see metricstream.codecs.lineprotocol)."},
    {"event_ids", (PyCFunction)(void (*)(void))event_ids, METH_FASTCALL,
     "The event ids of timestamps, from a generation and a first counter (see metricstream.server._ids)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "metricstream._speedups",
    "Optional compiled helpers for the per-event loops of the batch form and the encoders.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
