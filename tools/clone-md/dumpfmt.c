// SPDX-License-Identifier: GPL-2.0-only
/*
 * The dump grammar, XML and JSON: writing a superblock and its hydrated
 * regions as runs, and reading either form back with every number,
 * attribute and range validated (documented in
 * Documentation/metadata-tools.rst).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "md.h"

enum field { F_VERSION, F_REGION_SIZE, F_TARGET_SIZE, F_NR_REGIONS,
	     F_NR_HYDRATED, F_FLAGS, NR_FIELDS };
static const char *const field_name[NR_FIELDS] = {
	"version", "region_size", "target_size", "nr_regions", "nr_hydrated",
	"flags",
};

/* The superblock's fields in both forms, then the runs. */
void dump_write(FILE *f, const struct dump *dp, enum dump_format fmt)
{
	const uint64_t v[NR_FIELDS] = {
		dp->version, dp->region_size, dp->target_size, dp->nr_regions,
		bits_count(&dp->hydrated), dp->flags,
	};
	bool xml = fmt == FMT_XML, first = true;
	uint64_t pos = 0, len;

	fputs(xml ? "<superblock" : "{\n", f);
	for (int i = 0; i < NR_FIELDS; i++)
		fprintf(f, xml ? " %s=\"%llu\"" : "  \"%s\": %llu,\n",
			field_name[i], (unsigned long long)v[i]);
	fputs(xml ? ">\n" : "  \"hydrated\": [", f);
	while (bits_next_run(&dp->hydrated, &pos, &len)) {
		if (xml)
			fprintf(f, "  <range begin=\"%llu\" length=\"%llu\"/>\n",
				(unsigned long long)pos, (unsigned long long)len);
		else
			fprintf(f, "%s\n    {\"begin\": %llu, \"length\": %llu}",
				first ? "" : ",", (unsigned long long)pos,
				(unsigned long long)len);
		first = false;
		pos += len;
	}
	fputs(xml ? "</superblock>\n" : first ? "]\n}\n" : "\n  ]\n}\n", f);
}

/* ---- Reading ---- */


struct parser {
	const char *p, *end, *start;
	char *err;
	size_t errlen;
	uint64_t field[NR_FIELDS];
	bool have[NR_FIELDS];
	uint64_t *runs;		/* begin, length pairs */
	size_t nr_runs, cap_runs;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct parser *ps, const char *fmt, ...)
{
	unsigned int line = 1;
	size_t off;
	va_list ap;

	/* After parsing (start cleared) a line number would mean nothing. */
	for (const char *q = ps->start; q && q < ps->p && q < ps->end; q++)
		line += *q == '\n';
	off = ps->start ? (size_t)snprintf(ps->err, ps->errlen, "line %u: ", line) : 0;
	if (off >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + off, ps->errlen - off, fmt, ap);
	va_end(ap);
	return -1;
}

static void skip_space(struct parser *ps)
{
	while (ps->p < ps->end && isspace((unsigned char)*ps->p))
		ps->p++;
}

static bool eat(struct parser *ps, const char *s)
{
	size_t n = strlen(s);

	skip_space(ps);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, s, n))
		return false;
	ps->p += n;
	return true;
}

static int number(struct parser *ps, uint64_t *v)
{
	char buf[24];
	size_t n = 0;

	skip_space(ps);
	while (ps->p + n < ps->end && isdigit((unsigned char)ps->p[n]) &&
	       n < sizeof(buf) - 1) {
		buf[n] = ps->p[n];
		n++;
	}
	buf[n] = 0;
	if (!n || !parse_u64(buf, v))
		return fail(ps, "expected a decimal number");
	ps->p += n;
	return 0;
}

/* A name of letters and underscores, at most @cap - 1 long. */
static int name(struct parser *ps, char *out, size_t cap)
{
	size_t n = 0;

	skip_space(ps);
	while (ps->p < ps->end && (isalpha((unsigned char)*ps->p) || *ps->p == '_')) {
		if (n + 1 >= cap)
			return fail(ps, "name too long");
		out[n++] = *ps->p++;
	}
	out[n] = 0;
	return n ? 0 : fail(ps, "expected a name");
}

static int set_field(struct parser *ps, const char *key, uint64_t v)
{
	for (int i = 0; i < NR_FIELDS; i++) {
		if (strcmp(key, field_name[i]))
			continue;
		if (ps->have[i])
			return fail(ps, "%s given twice", key);
		ps->have[i] = true;
		ps->field[i] = v;
		return 0;
	}
	return fail(ps, "unknown field \"%s\"", key);
}

static int add_run(struct parser *ps, uint64_t begin, uint64_t len)
{
	if (ps->nr_runs == ps->cap_runs) {
		size_t cap = ps->cap_runs ? 2 * ps->cap_runs : 64;
		uint64_t *r = realloc(ps->runs, cap * 2 * sizeof(*r));

		if (!r)
			return fail(ps, "out of memory");
		ps->runs = r;
		ps->cap_runs = cap;
	}
	ps->runs[2 * ps->nr_runs] = begin;
	ps->runs[2 * ps->nr_runs + 1] = len;
	ps->nr_runs++;
	return 0;
}

/* XML: attr="N" pairs until "/>" (@empty) or ">". */
static int xml_attrs(struct parser *ps, uint64_t *begin, uint64_t *len,
		     bool *empty)
{
	char key[32];
	uint64_t v;
	bool got_begin = false, got_len = false;

	for (;;) {
		if (eat(ps, "/>")) {
			*empty = true;
			break;
		}
		if (eat(ps, ">")) {
			*empty = false;
			break;
		}
		if (name(ps, key, sizeof(key)) || !eat(ps, "=") ||
		    !eat(ps, "\""))
			return ps->err[0] ? -1 : fail(ps, "expected name=\"value\"");
		if (number(ps, &v))
			return -1;
		if (!eat(ps, "\""))
			return fail(ps, "expected '\"'");
		if (!begin) {
			if (set_field(ps, key, v))
				return -1;
		} else if (!strcmp(key, "begin") && !got_begin) {
			*begin = v;
			got_begin = true;
		} else if (!strcmp(key, "length") && !got_len) {
			*len = v;
			got_len = true;
		} else {
			return fail(ps, "unexpected range attribute \"%s\"", key);
		}
	}
	if (begin && (!got_begin || !got_len))
		return fail(ps, "a range needs begin and length");
	return 0;
}

static int parse_xml(struct parser *ps)
{
	uint64_t begin, len;
	bool empty;

	if (eat(ps, "<?xml")) {
		while (ps->p < ps->end && *ps->p != '>')
			ps->p++;
		if (!eat(ps, ">"))
			return fail(ps, "unterminated <?xml");
	}
	if (!eat(ps, "<superblock"))
		return fail(ps, "expected <superblock");
	if (xml_attrs(ps, NULL, NULL, &empty))
		return -1;
	while (!empty) {
		if (eat(ps, "</superblock>"))
			break;
		if (!eat(ps, "<range"))
			return fail(ps, "expected <range .../> or </superblock>");
		if (xml_attrs(ps, &begin, &len, &empty))
			return -1;
		if (!empty)
			return fail(ps, "<range> must be empty (<range .../>)");
		if (add_run(ps, begin, len))
			return -1;
		empty = false;
	}
	return 0;
}

static int json_key(struct parser *ps, char *key, size_t cap)
{
	if (!eat(ps, "\"") || name(ps, key, cap) || !eat(ps, "\"") ||
	    !eat(ps, ":"))
		return ps->err[0] ? -1 : fail(ps, "expected \"name\":");
	return 0;
}

static int json_range(struct parser *ps)
{
	uint64_t v[2] = { 0, 0 };
	bool got[2] = { false, false };
	char key[32];

	if (!eat(ps, "{"))
		return fail(ps, "expected {\"begin\": N, \"length\": N}");
	do {
		int i;

		if (json_key(ps, key, sizeof(key)))
			return -1;
		i = !strcmp(key, "begin") ? 0 : !strcmp(key, "length") ? 1 : -1;
		if (i < 0 || got[i])
			return fail(ps, "unexpected range field \"%s\"", key);
		if (number(ps, &v[i]))
			return -1;
		got[i] = true;
	} while (eat(ps, ","));
	if (!eat(ps, "}") || !got[0] || !got[1])
		return fail(ps, "a range is {\"begin\": N, \"length\": N}");
	return add_run(ps, v[0], v[1]);
}

static int parse_json(struct parser *ps)
{
	char key[32];
	uint64_t v;
	bool ranges = false;

	if (!eat(ps, "{"))
		return fail(ps, "expected {");
	do {
		if (json_key(ps, key, sizeof(key)))
			return -1;
		if (!strcmp(key, "hydrated")) {
			if (ranges)
				return fail(ps, "hydrated given twice");
			ranges = true;
			if (!eat(ps, "["))
				return fail(ps, "expected [");
			if (eat(ps, "]"))
				continue;
			do {
				if (json_range(ps))
					return -1;
			} while (eat(ps, ","));
			if (!eat(ps, "]"))
				return fail(ps, "expected ]");
			continue;
		}
		if (number(ps, &v) || set_field(ps, key, v))
			return -1;
	} while (eat(ps, ","));
	if (!eat(ps, "}"))
		return fail(ps, "expected }");
	if (!ranges)
		return fail(ps, "no \"hydrated\" list");
	return 0;
}

static int validate(struct parser *ps, struct dump *dp)
{
	uint64_t next = 0;

	for (int i = 0; i <= F_TARGET_SIZE; i++)
		if (!ps->have[i])
			return fail(ps, "%s missing", field_name[i]);
	dp->version = (uint32_t)ps->field[F_VERSION];
	dp->region_size = ps->field[F_REGION_SIZE];
	dp->target_size = ps->field[F_TARGET_SIZE];
	if (ps->field[F_VERSION] != SB_VERSION)
		return fail(ps, "version %llu, only %u is known",
			    (unsigned long long)ps->field[F_VERSION], SB_VERSION);
	if (dp->region_size < MIN_REGION_SIZE || dp->region_size > MAX_REGION_SIZE ||
	    (dp->region_size & (dp->region_size - 1)))
		return fail(ps, "region_size %llu: a power of two from %llu to %llu sectors",
			    (unsigned long long)dp->region_size, MIN_REGION_SIZE,
			    MAX_REGION_SIZE);
	dp->nr_regions = dp->target_size / dp->region_size +
			 (dp->target_size % dp->region_size ? 1 : 0);
	if (!dp->nr_regions || dp->nr_regions > MAX_REGIONS)
		return fail(ps, "target_size %llu gives %llu regions (1 to %llu allowed)",
			    (unsigned long long)dp->target_size,
			    (unsigned long long)dp->nr_regions, MAX_REGIONS);
	if (ps->have[F_NR_REGIONS] && ps->field[F_NR_REGIONS] != dp->nr_regions)
		return fail(ps, "nr_regions %llu, target_size/region_size give %llu",
			    (unsigned long long)ps->field[F_NR_REGIONS],
			    (unsigned long long)dp->nr_regions);
	if (ps->have[F_FLAGS] && ps->field[F_FLAGS] & ~(uint64_t)SB_FLAG_NEEDS_CHECK)
		return fail(ps, "unknown flags %llu", (unsigned long long)ps->field[F_FLAGS]);
	dp->flags = (uint32_t)ps->field[F_FLAGS];
	if (bits_init(&dp->hydrated, dp->nr_regions))
		return fail(ps, "out of memory");
	for (size_t i = 0; i < ps->nr_runs; i++) {
		uint64_t b = ps->runs[2 * i], l = ps->runs[2 * i + 1];

		if (!l || b < next || b > dp->nr_regions || l > dp->nr_regions - b)
			return fail(ps, "range %zu (begin %llu, length %llu): empty, overlapping, out of order or past region %llu",
				    i + 1, (unsigned long long)b, (unsigned long long)l,
				    (unsigned long long)dp->nr_regions - 1);
		bits_set_range(&dp->hydrated, b, l);
		next = b + l;
	}
	if (ps->have[F_NR_HYDRATED] &&
	    ps->field[F_NR_HYDRATED] != bits_count(&dp->hydrated))
		return fail(ps, "nr_hydrated %llu, the ranges hold %llu",
			    (unsigned long long)ps->field[F_NR_HYDRATED],
			    (unsigned long long)bits_count(&dp->hydrated));
	return 0;
}

int dump_parse(const char *text, size_t len, struct dump *dp,
	       char *errbuf, size_t errlen)
{
	struct parser ps = {
		.p = text, .end = text + len, .start = text,
		.err = errbuf, .errlen = errlen,
	};
	int r;

	memset(dp, 0, sizeof(*dp));
	errbuf[0] = 0;
	skip_space(&ps);
	if (ps.p < ps.end && *ps.p == '{')
		r = parse_json(&ps);
	else
		r = parse_xml(&ps);
	if (!r) {
		skip_space(&ps);
		if (ps.p != ps.end)
			r = fail(&ps, "trailing text");
	}
	ps.start = NULL;
	if (!r)
		r = validate(&ps, dp);
	free(ps.runs);
	if (r)
		bits_free(&dp->hydrated);
	return r;
}
