#!/usr/bin/env python3
"""Seeded generator of malformed (and a few odd but valid) restore inputs.

    gen_malformed_xml.py SEED OUTDIR [BASE.xml ...]

Writes OUTDIR/NNNN-KIND.xml and prints one line per file: "NNNN-KIND.xml".
The inputs start from valid thin_dump documents (built here with
gen_thin_xml.py's writer, plus the BASE files given, e.g. `thinp dump`
output) and are broken in every way restore must survive: truncations at
every kind of point, deleted / duplicated / garbled tags and attributes,
huge, negative and overflowing numbers, unbalanced tags, wrong nesting, bad
entities, NUL bytes, deep nesting, binary junk, encodings, duplicate devices
and mappings, overlapping ranges, XML constructs thin_dump never writes.

The same SEED and BASE files always give the same files: the expectations
of tests/cli/restore_malformed.sh were recorded from them."""
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_thin_xml  # noqa: E402  (its thin_dump-style writer)

SB = ('<superblock uuid="" time="%d" transaction="%d" version="2" data_block_size="128" '
      'nr_data_blocks="%d">')


def doc_snap():
    return '\n'.join([
        SB % (1, 5, 1024),
        '  <device dev_id="1" mapped_blocks="7" transaction="0" creation_time="0" snap_time="1">',
        '    <range_mapping origin_begin="0" data_begin="10" length="4" time="0"/>',
        '    <single_mapping origin_block="100" data_block="20" time="0"/>',
        '    <single_mapping origin_block="101" data_block="21" time="1"/>',
        '    <single_mapping origin_block="200" data_block="30" time="0"/>',
        '  </device>',
        '  <device dev_id="2" mapped_blocks="2" transaction="3" creation_time="1" snap_time="1">',
        '    <single_mapping origin_block="100" data_block="20" time="0"/>',
        '    <single_mapping origin_block="101" data_block="40" time="1"/>',
        '  </device>',
        '  <device dev_id="3" mapped_blocks="0" transaction="3" creation_time="1" snap_time="1">',
        '  </device>',
        '</superblock>', ''])


def doc_empty():
    return SB % (0, 0, 0) + '\n</superblock>\n'


def doc_fancy():
    """Valid but unlike thin_dump: declaration, comments, PIs, single quotes,
    explicit close tags, attributes out of order."""
    return '\n'.join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!-- written by hand -->',
        "<superblock nr_data_blocks='2048' uuid='abc' time='3' transaction='9' "
        "data_block_size='256'>",
        '  <?thinp note?>',
        '  <device snap_time="2" dev_id="7" mapped_blocks="3" transaction="1" creation_time="1">',
        '    <!-- a run -->',
        '    <range_mapping origin_begin="10" data_begin="500" length="2" time="2"></range_mapping>',
        '    <single_mapping data_block="600" origin_block="99" time="3"/>',
        '  </device>',
        '</superblock>',
        '<!-- trailer -->', ''])


def doc_random(rng):
    nr_data = 4096
    time = rng.randrange(1, 20)
    lines = [SB % (time, rng.randrange(1 << 32), nr_data)]
    dev = rng.randrange(5)
    for _ in range(rng.randrange(1, 6)):
        dev += rng.choice([1, 2, 9])
        maps = {}
        for _ in range(rng.randrange(0, 12)):
            o, d = rng.randrange(1 << 16), rng.randrange(nr_data - 20)
            t = rng.randrange(time + 1)
            for k in range(rng.choice([1, 1, 3, 8])):
                maps[o + k] = (d + k, t)
        ctime = rng.randrange(time + 1)
        lines += gen_thin_xml.device(dev, sorted((o, d, t) for o, (d, t) in maps.items()),
                                     rng.randrange(100), ctime, rng.randrange(ctime, time + 1))
    lines.append('</superblock>')
    return '\n'.join(lines) + '\n'


# ---- views of a document ----

TAG = re.compile(r'<[^>]*>')
ATTR = re.compile(r'([A-Za-z_]+)=(["\'])([^"\']*)\2')
NUMERIC = ('time', 'transaction', 'data_block_size', 'nr_data_blocks', 'dev_id', 'mapped_blocks',
           'creation_time', 'snap_time', 'origin_block', 'data_block', 'origin_begin',
           'data_begin', 'length', 'version', 'flags')


def tags(doc, kind=None):
    """(start, end) of tags: kind 'start', 'end', 'empty' or None for all."""
    out = []
    for m in TAG.finditer(doc):
        t = m.group(0)
        if t.startswith('<?') or t.startswith('<!'):
            continue
        k = 'end' if t.startswith('</') else 'empty' if t.endswith('/>') else 'start'
        if kind is None or k == kind or (kind == 'open' and k != 'end'):
            out.append((m.start(), m.end()))
    return out


def attrs(doc, names=None):
    """(name, value_start, value_end, attr_start, attr_end) of every attribute."""
    out = []
    for ts, te in tags(doc, 'open'):
        for m in ATTR.finditer(doc, ts, te):
            if names is None or m.group(1) in names:
                out.append((m.group(1), m.start(3), m.end(3), m.start(), m.end()))
    return out


def splice(doc, a, b, text):
    return doc[:a] + text + doc[b:]


# ---- mutations: f(rng, doc) -> str or bytes (None = not applicable) ----

def trunc_random(rng, d):
    return d[:rng.randrange(len(d))]


def trunc_at(pattern, after=True):
    def f(rng, d):
        ms = list(re.finditer(pattern, d))
        if not ms:
            return None
        m = rng.choice(ms)
        return d[:m.end() if after else m.start()]
    return f


def trunc_in_name(rng, d):
    ts, te = rng.choice(tags(d))
    return d[:ts + rng.randrange(1, 5)]


def trunc_in_value(rng, d):
    _, vs, ve, _, _ = rng.choice(attrs(d))
    return d[:rng.randrange(vs, ve + 1)]


def trunc_in_attr_name(rng, d):
    _, _, _, a, _ = rng.choice(attrs(d))
    return d[:a + rng.randrange(1, 4)]


def del_tag(kind):
    def f(rng, d):
        ts = tags(d, kind)
        if not ts:
            return None
        a, b = rng.choice(ts)
        return splice(d, a, b, '')
    return f


def dup_tag(kind):
    def f(rng, d):
        ts = tags(d, kind)
        if not ts:
            return None
        a, b = rng.choice(ts)
        return splice(d, a, b, d[a:b] + '\n' + d[a:b])
    return f


def dup_line(rng, d):
    lines = d.split('\n')
    i = rng.randrange(len(lines))
    return '\n'.join(lines[:i + 1] + lines[i:])


def del_line(rng, d):
    lines = d.split('\n')
    i = rng.randrange(len(lines))
    return '\n'.join(lines[:i] + lines[i + 1:])


def swap_lines(rng, d):
    lines = d.split('\n')
    i = rng.randrange(max(1, len(lines) - 1))
    lines[i:i + 2] = lines[i:i + 2][::-1]
    return '\n'.join(lines)


ELEM_NAMES = ['Device', 'devices', 'xdevice', 'dev', 'device2', 'foo', 'dévice', 'def', 'ref',
              'a' * 63, 'b' * 64, 'c' * 200, 'superblock', 'single_mapping', 'range_mapping',
              'ns:device', '_device', 'device.x']


def garble_elem_name(rng, d):
    a, b = rng.choice(tags(d))
    m = re.match(r'</?([A-Za-z_]+)', d[a:b])
    if not m:
        return None
    return splice(d, a + m.start(1), a + m.end(1), rng.choice(ELEM_NAMES))


def garble_elem_name_bad(rng, d):
    """names the XML grammar refuses"""
    a, b = rng.choice(tags(d))
    m = re.match(r'</?([A-Za-z_]+)', d[a:b])
    if not m:
        return None
    return splice(d, a + m.start(1), a + m.end(1),
                  rng.choice(['1device', '-dev', '.dev', 'de vice', 'dev@ice', '', 'dev"x']))


ATTR_NAMES = ['Time', 'timee', 'colour', 'x', 'uuid2', 'données', 'a' * 63, 'b' * 64, 'c' * 300,
              'ns:time', '_x', 'x.y', 'x-y', '1x', 'x"y']


def garble_attr_name(rng, d):
    name, _, _, a, _ = rng.choice(attrs(d))
    return splice(d, a, a + len(name), rng.choice(ATTR_NAMES))


def add_attr(rng, d):
    """an extra attribute: unknown names are warned about, not refused"""
    a, b = rng.choice(tags(d, 'open'))
    m = re.match(r'<[A-Za-z_]+', d[a:b])
    name = rng.choice(['colour', 'x', 'note', 'Time', 'metadata_snap', 'flags', 'version'])
    val = rng.choice(['1', '', 'red', '0', '3'])
    return splice(d, a + m.end(), a + m.end(), ' %s="%s"' % (name, val))


def many_attrs(rng, d):
    a, b = rng.choice(tags(d, 'open'))
    m = re.match(r'<[A-Za-z_]+', d[a:b])
    n = rng.choice([8, 10, 11, 12, 16, 40])
    extra = ''.join(' x%d="%d"' % (i, i) for i in range(n))
    return splice(d, a + m.end(), a + m.end(), extra)


def del_attr(rng, d):
    _, _, _, a, b = rng.choice(attrs(d))
    return splice(d, a, b, '')


def dup_attr(rng, d):
    name, vs, ve, a, b = rng.choice(attrs(d))
    other = rng.choice([d[vs:ve], '1', d[vs:ve] + '0'])
    return splice(d, b, b, ' %s="%s"' % (name, other))


def quoting(rng, d):
    name, vs, ve, a, b = rng.choice(attrs(d))
    v = d[vs:ve]
    return splice(d, a, b, rng.choice([
        '%s=%s' % (name, v or '0'),             # unquoted
        '%s="%s\'' % (name, v),                  # mismatched quotes
        '%s "%s"' % (name, v),                   # no '='
        '%s=="%s"' % (name, v),
        '%s="%s' % (name, v),                    # unterminated
        '%s = "%s"' % (name, v),                 # spaces: fine
        '%s=\n"%s"' % (name, v),                 # newline: fine
        '%s="%s"x="1"' % (name, v),              # no space before the next
        '="%s"' % v,                             # no name
        '%s' % name,                             # no value
    ]))


BAD_NUMBERS = ['', '-1', '+1', '0x10', '1.5', '1e3', ' 7 ', '007', '18446744073709551615',
               '18446744073709551616', '99999999999999999999999', '4294967295', '4294967296',
               '16777215', '16777216', '1099511627775', '1099511627776', '&#x31;&#x32;', '1 2',
               'abc', '\uff11', '\t5\n', '00000000000000000000000000001', '2147483648', '-0',
               '9223372036854775808', '1\u00a0']


def bad_number(rng, d):
    _, vs, ve, _, _ = rng.choice(attrs(d, NUMERIC))
    return splice(d, vs, ve, rng.choice(BAD_NUMBERS))


def set_attr(name, values):
    def f(rng, d):
        at = attrs(d, (name,))
        if not at:
            return None
        _, vs, ve, _, _ = rng.choice(at)
        return splice(d, vs, ve, rng.choice(values))
    return f


def mapping_beyond(rng, d):
    nr = re.search(r'nr_data_blocks=["\'](\d+)', d)
    if not nr:
        return None
    n = int(nr.group(1))
    line = rng.choice([
        '<single_mapping origin_block="5" data_block="%d" time="0"/>' % n,
        '<single_mapping origin_block="5" data_block="%d" time="0"/>' % max(n - 1, 0),
        '<range_mapping origin_begin="5" data_begin="%d" length="2" time="0"/>' % max(n - 1, 0),
        '<range_mapping origin_begin="5" data_begin="%d" length="1" time="0"/>' % max(n - 1, 0),
        '<range_mapping origin_begin="18446744073709551615" data_begin="0" length="2" time="0"/>',
        '<range_mapping origin_begin="18446744073709551614" data_begin="0" length="2" time="0"/>',
        '<range_mapping origin_begin="0" data_begin="0" length="0" time="0"/>',
        '<range_mapping origin_begin="0" data_begin="1" length="18446744073709551615" time="0"/>',
        '<single_mapping origin_block="1" data_block="1" time="16777216"/>',
        '<single_mapping origin_block="1" data_block="1" time="16777215"/>',
    ])
    return insert_in_device(rng, d, line)


def insert_in_device(rng, d, text):
    ends = [m.start() for m in re.finditer(r'</device>', d)]
    if not ends:
        return None
    p = rng.choice(ends)
    return splice(d, p, p, '  ' + text + '\n  ')


def duplicate_mappings(rng, d):
    maps = [m for m in re.finditer(r'<(single|range)_mapping[^>]*>', d)]
    if not maps:
        return None
    m = rng.choice(maps)
    t = m.group(0)
    variant = rng.choice([
        t,                                                             # listed twice
        re.sub(r'data_(block|begin)="(\d+)"',
               lambda x: 'data_%s="%d"' % (x.group(1), int(x.group(2)) + 1), t),  # other data
        re.sub(r'origin_(block|begin)="(\d+)"',
               lambda x: 'origin_%s="%d"' % (x.group(1), int(x.group(2)) + 1), t),  # overlap
    ])
    return splice(d, m.end(), m.end(), '\n    ' + variant)


def overlapping_range(rng, d):
    return insert_in_device(rng, d, rng.choice([
        '<range_mapping origin_begin="0" data_begin="100" length="50" time="0"/>\n'
        '    <range_mapping origin_begin="25" data_begin="300" length="50" time="0"/>',
        '<range_mapping origin_begin="0" data_begin="100" length="10" time="0"/>\n'
        '    <single_mapping origin_block="5" data_block="7" time="0"/>',
        '<range_mapping origin_begin="0" data_begin="100" length="10" time="0"/>\n'
        '    <range_mapping origin_begin="0" data_begin="100" length="10" time="0"/>',
    ]))


def duplicate_device(rng, d):
    m = rng.choice(list(re.finditer(r'  <device.*?</device>\n|  <device[^>]*/>\n', d, re.S)) or
                   [None])
    if not m:
        return None
    dev = m.group(0)
    if rng.random() < 0.5:
        dev = re.sub(r'<(single|range)_mapping[^>]*>\n', '', dev)
    return splice(d, m.end(), m.end(), rng.choice(['', '  <!-- again -->\n']) + dev)


NESTING = [
    ('in_device', '<device dev_id="77" mapped_blocks="0" transaction="0" creation_time="0" '
                  'snap_time="0"/>'),
    ('in_device', '<superblock uuid="" time="0" transaction="0" data_block_size="128" '
                  'nr_data_blocks="1"/>'),
    ('in_device', '<device/>'),
    ('in_device', '<foo/>'),
    ('in_device', '<single_mapping origin_block="1" data_block="1" time="0">'
                  '<single_mapping origin_block="2" data_block="2" time="0"/></single_mapping>'),
    ('in_device', '<range_mapping origin_begin="1" data_begin="1" length="1" time="0">'
                  '</device>'),
    ('in_device', '<single_mapping origin_block="1" data_block="1" time="0"></range_mapping>'),
    ('in_device', '<single_mapping origin_block="1" data_block="1" time="0"><!-- c -->'
                  '</single_mapping>'),
    ('in_device', '<single_mapping origin_block="1" data_block="1" time="0">\n'
                  '</single_mapping>'),
    ('in_device', '<def name="x"><single_mapping origin_block="0" data_block="1" time="0"/></def>'),
    ('in_device', '<ref name="x"/>'),
    ('in_sb', '<single_mapping origin_block="1" data_block="1" time="0"/>'),
    ('in_sb', '<range_mapping origin_begin="1" data_begin="1" length="1" time="0"/>'),
    ('in_sb', '<superblock/>'),
    ('in_sb', '<def name="x"/>'),
    ('in_sb', '</device>'),
    ('after', '<device dev_id="77" mapped_blocks="0" transaction="0" creation_time="0" '
              'snap_time="0"/>'),
    ('after', '<superblock uuid="" time="0" transaction="0" data_block_size="128" '
              'nr_data_blocks="1"/>'),
    ('after', '</superblock>'),
    ('after', '</device>'),
    ('after', 'trailing text'),
    ('after', '<!-- a comment is fine -->'),
    ('after', '<?pi is fine?>'),
    ('after', '<def/>'),
    ('before', '<device dev_id="77" mapped_blocks="0" transaction="0" creation_time="0" '
               'snap_time="0"/>'),
    ('before', '</superblock>'),
    ('before', 'text'),
    ('before', '<single_mapping origin_block="1" data_block="1" time="0"/>'),
]


def nesting(rng, d):
    where, text = rng.choice(NESTING)
    if where == 'in_device':
        return insert_in_device(rng, d, text)
    if where == 'in_sb':
        m = re.search(r'<superblock[^>]*>\n', d)
        p = rng.choice([m.end(), d.rindex('</superblock>')])
        return splice(d, p, p, '  ' + text + '\n')
    if where == 'after':
        return d + text + '\n'
    m = re.search(r'<superblock', d)
    return splice(d, m.start(), m.start(), text + '\n')


def self_closed(rng, d):
    """<device .../> and <superblock .../> with nothing inside"""
    m = rng.choice(list(re.finditer(r'<(device|superblock)([^>]*)>', d)))
    return splice(d, m.start(), m.end(), '<%s%s/>' % (m.group(1), m.group(2)))


def wrong_close_order(rng, d):
    m = list(re.finditer(r'</device>', d))
    if not m:
        return None
    p = rng.choice(m)
    return splice(d, p.start(), p.end(), rng.choice(['</superblock>', '</single_mapping>',
                                                     '</devic>', '</device >', '</ device>',
                                                     '</device x="1">', '</device/>']))


def deep(rng, d):
    n = rng.choice([2, 3, 50, 1000, 100000])
    name = rng.choice(['device', 'superblock', 'a', 'single_mapping'])
    open_ = '<%s>' % name
    if rng.random() < 0.5:
        return open_ * n + '</%s>' % name * n
    return insert_in_device(rng, d, open_ * n)


ENTITIES = ['&foo;', '&amp', '&#0;', '&#xD800;', '&#1114112;', '&#x110000;', '&#x41;', '&lt;',
            '&#65;&#66;', '&;', '&#;', '&#x;', '&verylongentityname123;', '&#x31;', '&#49;',
            '&#x1;', '&#9;', '&#xFFFE;', '&#xFFFF;', '&#x10FFFF;', '&quot;', '&apos;', '&AMP;',
            '&#x0031;', '&#00000049;', '& amp;']


def entity_in_value(rng, d):
    name, vs, ve, _, _ = rng.choice(attrs(d))
    e = rng.choice(ENTITIES)
    p = rng.choice([vs, ve])
    return splice(d, p, p, e)


def entity_in_content(rng, d):
    e = rng.choice(['&amp;', '&#32;', '&#x20;', '&#10;', '&foo;', '&#x41;', '&lt;', '&#9;'])
    return insert_in_device(rng, d, e) or d.replace('</superblock>', e + '</superblock>')


def insert_bytes(what):
    def f(rng, d):
        b = d.encode()
        p = rng.randrange(len(b) + 1)
        if what == 'nul':
            junk = b'\0' * rng.choice([1, 1, 2, 8])
        elif what == 'ctrl':
            junk = bytes([rng.choice([1, 7, 8, 11, 12, 27, 127])])
        elif what == 'high':
            junk = bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 4)))
        else:
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 17)))
        return b[:p] + junk + b[p:]
    return f


def nul_in_value(rng, d):
    _, vs, ve, _, _ = rng.choice(attrs(d))
    b = d.encode()
    # character offsets equal byte offsets: the bases are ASCII up to here
    p = rng.randrange(vs, ve + 1)
    return b[:p] + b'\0' + b[p:]


def binary_file(rng, d):
    n = rng.choice([1, 2, 16, 512, 4096])
    return bytes(rng.randrange(256) for _ in range(n))


def encodings(rng, d):
    return rng.choice([
        lambda: d.encode('utf-16'),
        lambda: d.encode('utf-16-le'),
        lambda: d.encode('utf-16-be'),
        lambda: d.encode('utf-32'),
        lambda: b'\xef\xbb\xbf' + d.encode(),                 # BOM: fine
        lambda: b'\xef\xbb\xbf\xef\xbb\xbf' + d.encode(),     # two
        lambda: b'\xef\xbb' + d.encode(),                     # broken BOM
        lambda: b'\xef\xbb\xbf',
        lambda: d.replace('uuid=""', 'uuid="\xe9t\xe9"').encode('latin-1', 'replace'),
        lambda: d.replace('uuid=""', 'uuid="\xe9t\xe9"').encode(),   # UTF-8 uuid: fine
        lambda: d.replace('uuid=""', 'uuid="\U0001F600"').encode(),
        lambda: d.replace('uuid=""', 'uuid="\xff\xfe"').encode('latin-1', 'replace'),
        lambda: d.replace('\n', '\r\n').encode(),              # CRLF: fine
        lambda: ('<?xml version="1.0" encoding="ISO-8859-1"?>\n' + d).encode(),
        lambda: ('<?xml version="1.0" encoding="UTF-16"?>\n' + d).encode(),
        lambda: ('<?xml version="1.1"?>\n' + d).encode(),
    ])()


def doc_level(rng, d):
    return rng.choice([
        '', ' ', '\n\n\n', '<!-- only a comment -->\n', '<?xml version="1.0"?>\n', '<',
        '<>', '</>', '<?', '<!', '<!--', 'not xml at all\n', '\n\n   x', '<superblock',
        '<superblock/>', '<superblock uuid="" time="0" transaction="0" data_block_size="128" '
        'nr_data_blocks="0"/>\n',
        '<superblock uuid="" time="0" transaction="0" data_block_size="128" '
        'nr_data_blocks="0"></superblock>',
        '<superblock uuid="" time="0" transaction="0" data_block_size="128" '
        'nr_data_blocks="0">',
    ])


XML_CONSTRUCTS = [
    ('in_device', '<![CDATA[ ]]>'),
    ('in_device', '<![CDATA[<single_mapping/>]]>'),
    ('in_device', '<!-- a -- b -->'),
    ('in_device', '<!-- ends with a dash --->'),
    ('in_device', '<!-- ok - comment -->'),
    ('in_device', '<!-- unterminated'),
    ('in_device', '<?xml version="1.0"?>'),
    ('in_device', '<?pi fine ?>'),
    ('in_device', '<? ?>'),
    ('in_device', '<?XML foo?>'),
    ('in_device', '<!DOCTYPE superblock>'),
    ('in_device', '<!ELEMENT device ANY>'),
    ('in_device', '<!foo>'),
    ('in_device', ']]>'),
    ('in_device', '<!-- \x01 control -->'),
    ('prolog', '<!DOCTYPE superblock>'),
    ('prolog', '<!DOCTYPE superblock SYSTEM "thin.dtd">'),
    ('prolog', '<!DOCTYPE superblock PUBLIC "-//x//y" "thin.dtd">'),
    ('prolog', '<!DOCTYPE superblock [ <!ENTITY foo "1"> ]>'),
    ('prolog', '<!DOCTYPE superblock [ <!ENTITY a "aaaaaaaaaa"> <!ENTITY b "&a;&a;&a;&a;"> ]>'),
    ('prolog', '<!DOCTYPE superblock [ ]>'),
    ('prolog', '<!DOCTYPE>'),
    ('prolog', '<!DOGE>'),
    ('prolog', '<!DOCTYPE superblock'),
    ('prolog', '<!DOCTYPE superblock>\n<!DOCTYPE superblock>'),
    ('prolog', ' <?xml version="1.0"?>'),
    ('prolog', '<?xml version="1.0"?>\n<?xml version="1.0"?>'),
    ('prolog', '<?xml version="1.0" standalone="yes"?>'),
    ('prolog', '<?xml?>'),
    ('prolog', '<!-- before -->\n<!-- twice -->'),
    ('prolog', '<!---->'),
    ('prolog', '<!-- - -->'),
]


def xml_construct(rng, d):
    where, text = rng.choice(XML_CONSTRUCTS)
    if where == 'in_device':
        return insert_in_device(rng, d, text)
    if d.startswith('<?xml') and not text.startswith('<!--'):
        d = d[d.index('\n') + 1:]
    return text + '\n' + d


def doctype_entity(rng, d):
    """an external DTD is not read: its entities stay unknown"""
    name, vs, ve, _, _ = rng.choice(attrs(d))
    out = splice(d, vs, vs, rng.choice(['&foo;', '&thin;', '&amp;']))
    if out.startswith('<?xml'):
        out = out[out.index('\n') + 1:]
    return '<!DOCTYPE superblock SYSTEM "thin.dtd">\n' + out


def long_value(rng, d):
    _, vs, ve, _, _ = rng.choice(attrs(d))
    n = rng.choice([1022, 1023, 1024, 5000, 200000])
    return splice(d, vs, ve, rng.choice(['1', ' ', 'x']) * n)


def long_comment(rng, d):
    n = rng.choice([1000, 100000, 3000000])
    return insert_in_device(rng, d, '<!--' + 'c' * n + '-->') or d


def text_between(rng, d):
    t = rng.choice(['x', 'hello', '  7  ', '\t.', '>', '"', "'", '=', '/', '</', '<', '<<',
                    '>>', '\u00e9', '\u00a0'])
    ends = [m.end() for m in re.finditer(r'>', d)]
    p = rng.choice(ends)
    return splice(d, p, p, t)


def semantics(rng, d):
    """values restore judges (not the XML)"""
    return rng.choice([
        set_attr('version', ['0', '1', '2', '3', '4294967295', '4294967296']),
        set_attr('data_block_size', ['0', '1', '64', '127', '128', '129', '2097152', '2097280',
                                     '4194304', '4294967295', '4294967296']),
        set_attr('nr_data_blocks', ['0', '1', '16320', '16321', '1099511627775',
                                    '1099511627776']),
        set_attr('time', ['16777215', '16777216', '0']),
        set_attr('dev_id', ['16777215', '16777216', '0']),
        set_attr('transaction', ['18446744073709551615', '18446744073709551616']),
        set_attr('flags', ['0', '1', '4294967295', '4294967296']),
        set_attr('mapped_blocks', ['0', '999', '18446744073709551615']),
        set_attr('creation_time', ['99', '4294967295', '4294967296']),
        set_attr('snap_time', ['99', '4294967295', '4294967296']),
        set_attr('uuid', ['', 'x' * 16, 'y' * 40, '&lt;&gt;', ' ']),
        set_attr('length', ['0', '1', '18446744073709551615']),
    ])(rng, d)


def add_superblock_attr(rng, d):
    a = rng.choice(['metadata_snap="0"', 'metadata_snap="17"', 'metadata_snap="x"',
                    'version="1"', 'flags="2"', 'flags="-1"', 'version=""'])
    if a.split('=')[0] + '=' in d.split('\n', 1)[0]:
        return None
    return d.replace('<superblock ', '<superblock %s ' % a, 1)


MUTATIONS = [
    ('trunc-random', trunc_random, 14),
    ('trunc-after-lt', trunc_at(r'<'), 6),
    ('trunc-after-lt-slash', trunc_at(r'</'), 4),
    ('trunc-in-name', trunc_in_name, 5),
    ('trunc-in-attr-name', trunc_in_attr_name, 5),
    ('trunc-after-eq', trunc_at(r'='), 5),
    ('trunc-in-value', trunc_in_value, 6),
    ('trunc-after-value', trunc_at(r'"(?= |/|>)'), 5),
    ('trunc-before-gt', trunc_at(r'>', after=False), 5),
    ('trunc-after-slash', trunc_at(r'/(?=>)'), 4),
    ('trunc-between-tags', trunc_at(r'>\n?'), 8),
    ('trunc-in-comment', trunc_at(r'<!--[^>]{0,4}'), 3),
    ('trunc-in-decl', trunc_at(r'<\?[a-z ]{0,6}'), 3),
    ('del-start-tag', del_tag('start'), 6),
    ('del-end-tag', del_tag('end'), 6),
    ('del-empty-tag', del_tag('empty'), 4),
    ('dup-start-tag', dup_tag('start'), 5),
    ('dup-end-tag', dup_tag('end'), 5),
    ('dup-line', dup_line, 6),
    ('del-line', del_line, 6),
    ('swap-lines', swap_lines, 6),
    ('garble-elem-name', garble_elem_name, 12),
    ('garble-elem-name-bad', garble_elem_name_bad, 6),
    ('garble-attr-name', garble_attr_name, 12),
    ('add-attr', add_attr, 6),
    ('many-attrs', many_attrs, 5),
    ('del-attr', del_attr, 8),
    ('dup-attr', dup_attr, 6),
    ('quoting', quoting, 14),
    ('bad-number', bad_number, 26),
    ('mapping-beyond', mapping_beyond, 10),
    ('duplicate-mapping', duplicate_mappings, 6),
    ('overlapping-range', overlapping_range, 4),
    ('duplicate-device', duplicate_device, 4),
    ('nesting', nesting, 24),
    ('self-closed', self_closed, 4),
    ('close-order', wrong_close_order, 8),
    ('deep', deep, 8),
    ('entity-in-value', entity_in_value, 20),
    ('entity-in-content', entity_in_content, 6),
    ('nul', insert_bytes('nul'), 6),
    ('nul-in-value', nul_in_value, 4),
    ('ctrl-byte', insert_bytes('ctrl'), 4),
    ('high-bytes', insert_bytes('high'), 5),
    ('junk', insert_bytes('junk'), 8),
    ('binary-file', binary_file, 4),
    ('encoding', encodings, 16),
    ('doc-level', doc_level, 12),
    ('xml-construct', xml_construct, 30),
    ('doctype-entity', doctype_entity, 3),
    ('long-value', long_value, 5),
    ('long-comment', long_comment, 3),
    ('text', text_between, 10),
    ('semantics', semantics, 30),
    ('superblock-attr', add_superblock_attr, 6),
]


def main():
    seed, outdir, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    rng = random.Random(seed)
    bases = [doc_snap(), doc_empty(), doc_fancy()] + [doc_random(rng) for _ in range(4)]
    for path in extra:
        with open(path) as f:
            bases.append(f.read())
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for kind, fn, count in MUTATIONS:
        made = 0
        for _ in range(count * 20):
            if made == count:
                break
            out = fn(rng, rng.choice(bases))
            if out is None:
                continue
            if isinstance(out, str):
                out = out.encode()
            name = '%04d-%s.xml' % (n, kind)
            with open(os.path.join(outdir, name), 'wb') as f:
                f.write(out)
            print(name)
            n += 1
            made += 1


if __name__ == '__main__':
    main()
