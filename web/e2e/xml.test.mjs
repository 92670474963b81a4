// Unit tests of the XML pretty-printer (web/static/xml.js), which runs in node as well: the
// indentation is done on the text, nothing is unescaped or dropped, malformed input never throws.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tokenize, prettyLines } from '../static/xml.js';

const text = (lines) => lines.map((l) => l.map(([, s]) => s).join('')).join('\n');

describe('xml pretty-printer', () => {
  it('indents nested elements and keeps leaf elements on one line', () => {
    const src = '<?xml version="1.0"?><a xmlns:r="u" x="1"><b><c>v</c><d/></b><e></e><!-- c --></a>';
    assert.equal(text(prettyLines(src)), [
      '<?xml version="1.0"?>',
      '<a xmlns:r="u" x="1">',
      '  <b>',
      '    <c>v</c>',
      '    <d/>',
      '  </b>',
      '  <e></e>',
      '  <!-- c -->',
      '</a>',
    ].join('\n'));
  });

  it('keeps text, references, CDATA and quoted ">" exactly', () => {
    const src = '<r a="x>y" b=\'q"\'><t>&lt;script&gt;</t><u><![CDATA[<script>x</script>]]></u></r>';
    const out = text(prettyLines(src));
    assert.ok(out.includes('<t>&lt;script&gt;</t>'));
    assert.ok(out.includes('<u><![CDATA[<script>x</script>]]></u>'));
    assert.ok(out.includes('a="x>y"'));
    assert.ok(out.includes('b=\'q"\''));
    const attrs = prettyLines(src)[0].filter(([c]) => c === 'x-attr').map(([, s]) => s);
    assert.deepEqual(attrs, ['a', 'b']);
  });

  it('loses no non-whitespace character', () => {
    const src = '<roap:x xmlns:roap="urn:oma:bac:dldrm:roap-1.0" status="Success">\n  <nonce>T1Sq==</nonce>\n<b>x<i>y</i>z</b></roap:x>';
    const squash = (s) => s.replace(/\s+/g, '');
    assert.equal(squash(text(prettyLines(src))), squash(src));
  });

  it('survives malformed input', () => {
    for (const src of ['<a><b', 'x < y', '<a attr="unterminated>', '</a></b>', '<!-- open', '<![CDATA[ open', '<<<>>>', '']) {
      const toks = tokenize(src);
      assert.equal(toks.map((t) => t.s).join(''), src, `tokens cover ${JSON.stringify(src)}`);
      assert.doesNotThrow(() => prettyLines(src));
    }
  });
});
