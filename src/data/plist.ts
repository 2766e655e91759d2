/**
 * A small reader for XML property lists (Apple's plist 1.0, as Python's plistlib writes them):
 * dict, array, string, integer, real, true, false, date (as its string) and data (base64 bytes).
 * Enough for InVesalius project files; errors name the file and the offending element.
 */
import { DataError } from './errors.js';

export type PlistValue = string | number | boolean | Uint8Array | PlistValue[] | PlistDict;
export interface PlistDict {
  [key: string]: PlistValue;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

interface Tag {
  name: string;
  close: boolean;
  selfClose: boolean;
  end: number; // index just past '>'
}

export function parsePlist(xml: string, name: string): PlistValue {
  const fail = (msg: string, at: number): never => {
    throw new DataError(`${name}: malformed plist: ${msg} (at character ${at})`);
  };
  let p = 0;

  /** The next tag from p, skipping text, comments, the XML declaration and the DOCTYPE. */
  const nextTag = (): Tag => {
    for (;;) {
      const lt = xml.indexOf('<', p);
      if (lt < 0) return fail('unexpected end of document', p);
      if (xml.startsWith('<!--', lt)) {
        const e = xml.indexOf('-->', lt);
        if (e < 0) fail('unterminated comment', lt);
        p = e + 3;
        continue;
      }
      if (xml.startsWith('<?', lt) || xml.startsWith('<!', lt)) {
        const e = xml.indexOf('>', lt);
        if (e < 0) fail('unterminated declaration', lt);
        p = e + 1;
        continue;
      }
      const gt = xml.indexOf('>', lt);
      if (gt < 0) fail('unterminated tag', lt);
      let body = xml.slice(lt + 1, gt).trim();
      const close = body.startsWith('/');
      const selfClose = body.endsWith('/');
      if (close) body = body.slice(1);
      if (selfClose) body = body.slice(0, -1);
      p = gt + 1;
      return { name: body.split(/\s/)[0]!, close, selfClose, end: gt + 1 };
    }
  };

  /** Text up to the closing tag `</tag>`. */
  const textUntil = (tag: string): string => {
    const e = xml.indexOf(`</${tag}>`, p);
    if (e < 0) fail(`no closing </${tag}>`, p);
    const raw = xml.slice(p, e);
    if (raw.includes('<')) fail(`unexpected element inside <${tag}>`, p);
    p = e + tag.length + 3;
    return unescapeXml(raw);
  };

  const value = (t: Tag): PlistValue => {
    const at = t.end;
    if (t.close) return fail(`unexpected </${t.name}>`, at);
    switch (t.name) {
      case 'dict': {
        const d: PlistDict = Object.create(null) as PlistDict;
        if (t.selfClose) return d;
        for (;;) {
          const k = nextTag();
          if (k.close && k.name === 'dict') return d;
          if (k.name !== 'key' || k.close) fail(`expected <key> in <dict>, got <${k.close ? '/' : ''}${k.name}>`, k.end);
          const key = k.selfClose ? '' : textUntil('key');
          d[key] = value(nextTag());
        }
      }
      case 'array': {
        const a: PlistValue[] = [];
        if (t.selfClose) return a;
        for (;;) {
          const v = nextTag();
          if (v.close && v.name === 'array') return a;
          a.push(value(v));
        }
      }
      case 'string':
        return t.selfClose ? '' : textUntil('string');
      case 'date':
        return t.selfClose ? '' : textUntil('date').trim();
      case 'integer': {
        const s = t.selfClose ? '' : textUntil('integer').trim();
        const m = /^([+-]?)(0x[0-9a-f]+|\d+)$/i.exec(s);
        if (!m) return fail(`bad <integer> ${JSON.stringify(s)}`, at);
        const mag = /^0x/i.test(m[2]!) ? parseInt(m[2]!.slice(2), 16) : parseInt(m[2]!, 10);
        return m[1] === '-' ? -mag : mag;
      }
      case 'real': {
        const s = t.selfClose ? '' : textUntil('real').trim();
        const n = /^[+-]?(inf|infinity)$/i.test(s) ? (s.startsWith('-') ? -Infinity : Infinity) : /^nan$/i.test(s) ? NaN : Number(s);
        if (s === '' || (Number.isNaN(n) && !/^nan$/i.test(s))) fail(`bad <real> ${JSON.stringify(s)}`, at);
        return n;
      }
      case 'true':
      case 'false':
        if (!t.selfClose) {
          const c = nextTag();
          if (!(c.close && c.name === t.name)) fail(`<${t.name}> must be empty`, at);
        }
        return t.name === 'true';
      case 'data': {
        const s = t.selfClose ? '' : textUntil('data').replace(/\s+/g, '');
        try {
          return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
        } catch {
          return fail('bad base64 in <data>', at);
        }
      }
      default:
        return fail(`unknown element <${t.name}>`, at);
    }
  };

  const root = nextTag();
  if (root.name !== 'plist' || root.close) fail(`expected <plist>, got <${root.name}>`, root.end);
  if (root.selfClose) fail('empty <plist/>', root.end);
  const v = value(nextTag());
  const end = nextTag();
  if (!(end.close && end.name === 'plist')) fail('expected </plist> after the root value', end.end);
  return v;
}
