// Pretty-printing of XML as text: the body is split into markup and text tokens and re-indented.
// Nothing is parsed by the browser and nothing is unescaped: entity references stay as they were
// sent, and the result is built from text nodes.

import { el } from './dom.js';

// tokenize splits text into XML tokens. Malformed input degrades to text tokens, never throws.
export function tokenize(text) {
  const out = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const lt = text.indexOf('<', i);
    if (lt < 0) {
      out.push({ t: 'text', s: text.slice(i) });
      break;
    }
    if (lt > i) out.push({ t: 'text', s: text.slice(i, lt) });
    let end;
    let t;
    if (text.startsWith('<!--', lt)) {
      end = text.indexOf('-->', lt + 4);
      end = end < 0 ? n : end + 3;
      t = 'comment';
    } else if (text.startsWith('<![CDATA[', lt)) {
      end = text.indexOf(']]>', lt + 9);
      end = end < 0 ? n : end + 3;
      t = 'cdata';
    } else if (text.startsWith('<?', lt)) {
      end = text.indexOf('?>', lt + 2);
      end = end < 0 ? n : end + 2;
      t = 'pi';
    } else if (text.startsWith('<!', lt)) {
      end = text.indexOf('>', lt + 2);
      end = end < 0 ? n : end + 1;
      t = 'doctype';
    } else {
      // A tag ends at the first '>' outside quoted attribute values.
      let q = '';
      end = -1;
      for (let j = lt + 1; j < n; j++) {
        const c = text[j];
        if (q) {
          if (c === q) q = '';
        } else if (c === '"' || c === "'") q = c;
        else if (c === '>') {
          end = j + 1;
          break;
        } else if (c === '<') break;
      }
      if (end < 0) {
        // Not a tag after all: keep it as text.
        const next = text.indexOf('<', lt + 1);
        const stop = next < 0 ? n : next;
        out.push({ t: 'text', s: text.slice(lt, stop) });
        i = stop;
        continue;
      }
      const raw = text.slice(lt, end);
      t = raw.startsWith('</') ? 'close' : raw.endsWith('/>') ? 'empty' : 'open';
    }
    out.push({ t, s: text.slice(lt, end) });
    i = end;
  }
  return out;
}

const ATTR_RE = /([^\s=/>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?/g;

// tagSegments splits a start or end tag into coloured segments.
function tagSegments(raw) {
  const segs = [];
  const close = raw.startsWith('</');
  const empty = !close && raw.endsWith('/>');
  const inner = raw.slice(close ? 2 : 1, raw.length - (empty ? 2 : 1));
  const m = /^\s*([^\s/>]*)/.exec(inner);
  const name = m ? m[1] : '';
  segs.push(['x-punc', close ? '</' : '<'], ['x-tag', name]);
  const rest = inner.slice(m ? m[0].length : 0);
  ATTR_RE.lastIndex = 0;
  let a;
  while ((a = ATTR_RE.exec(rest)) !== null) {
    segs.push(['', ' '], [a[1].startsWith('xmlns') ? 'x-ns' : 'x-attr', a[1]]);
    if (a[2] !== undefined) segs.push(['x-punc', '='], ['x-val', a[2]]);
  }
  segs.push(['x-punc', empty ? '/>' : '>']);
  return segs;
}

function tagName(raw) {
  const m = /^<\/?\s*([^\s/>]*)/.exec(raw);
  return m ? m[1] : '';
}

// prettyLines returns the re-indented body as lines of [class, text] segments.
export function prettyLines(text, indent = '  ') {
  const toks = tokenize(text);
  const lines = [];
  let depth = 0;
  const pad = () => indent.repeat(Math.max(0, depth));
  for (let i = 0; i < toks.length; i++) {
    const k = toks[i];
    switch (k.t) {
      case 'open': {
        const a = toks[i + 1];
        const b = toks[i + 2];
        // <a>text</a> and <a></a> stay on one line.
        if (a && a.t === 'close' && tagName(a.s) === tagName(k.s)) {
          lines.push([['', pad()], ...tagSegments(k.s), ...tagSegments(a.s)]);
          i += 1;
        } else if (a && (a.t === 'text' || a.t === 'cdata') && b && b.t === 'close' && tagName(b.s) === tagName(k.s) && !a.s.includes('\n')) {
          lines.push([['', pad()], ...tagSegments(k.s), [a.t === 'cdata' ? 'x-cdata' : 'x-text', a.s], ...tagSegments(b.s)]);
          i += 2;
        } else {
          lines.push([['', pad()], ...tagSegments(k.s)]);
          depth++;
        }
        break;
      }
      case 'close':
        depth--;
        lines.push([['', pad()], ...tagSegments(k.s)]);
        break;
      case 'empty':
        lines.push([['', pad()], ...tagSegments(k.s)]);
        break;
      case 'text': {
        const s = k.s.trim();
        if (s) lines.push([['', pad()], ['x-text', s]]);
        break;
      }
      case 'comment':
        lines.push([['', pad()], ['x-comment', k.s]]);
        break;
      case 'cdata':
        lines.push([['', pad()], ['x-cdata', k.s]]);
        break;
      default:
        lines.push([['', pad()], ['x-pi', k.s]]);
    }
  }
  return lines;
}

const PRETTY_LIMIT = 2 << 20;

// prettyNode renders text as indented, coloured XML inside a <pre>.
export function prettyNode(text) {
  const pre = el('pre', { class: 'code pretty' });
  if (text.length > PRETTY_LIMIT) {
    pre.textContent = text;
    return pre;
  }
  const frag = document.createDocumentFragment();
  for (const line of prettyLines(text)) {
    for (const [cls, s] of line) {
      if (!s) continue;
      if (cls) frag.appendChild(el('span', { class: cls, text: s }));
      else frag.appendChild(document.createTextNode(s));
    }
    frag.appendChild(document.createTextNode('\n'));
  }
  pre.appendChild(frag);
  return pre;
}
