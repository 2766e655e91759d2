// Prints the URI of the apt source that serves Debian suite SUITE (argv[2]) on this machine,
// read from /etc/apt/sources.list and sources.list.d (one-line and deb822 formats).
import { readFileSync, readdirSync, existsSync } from 'node:fs';

const suite = process.argv[2];
const files = [];
if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
if (existsSync('/etc/apt/sources.list.d')) {
  for (const f of readdirSync('/etc/apt/sources.list.d')) {
    if (f.endsWith('.list') || f.endsWith('.sources')) files.push(`/etc/apt/sources.list.d/${f}`);
  }
}

function fromOneLine(text) {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m && m[2] === suite && m[3].split(/\s+/).includes('main')) return m[1];
  }
  return null;
}

function fromDeb822(text) {
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = {};
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (m) fields[m[1].toLowerCase()] = m[2].trim();
    }
    if ((fields.enabled ?? 'yes') === 'no') continue;
    if (!(fields.types ?? '').split(/\s+/).includes('deb')) continue;
    if (!(fields.suites ?? '').split(/\s+/).includes(suite)) continue;
    if (!(fields.components ?? '').split(/\s+/).includes('main')) continue;
    const uri = (fields.uris ?? '').split(/\s+/)[0];
    if (uri) return uri;
  }
  return null;
}

for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const uri = f.endsWith('.sources') ? fromDeb822(text) : fromOneLine(text);
  if (uri) { console.log(uri); process.exit(0); }
}
process.exit(1);
