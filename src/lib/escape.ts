// Every string that comes from the machine (a process's comm and cmdline, user names, cgroup paths,
// unit names, file names in maps) is chosen by whoever owns it, and rdmactl runs as root on shared
// machines: such a string must never reach a terminal or a line-based pipe as it is. This module is
// the one owner of the rule of what is unsafe and how it is written, as ps and lsfd escape control characters:
// each unsafe character becomes \xNN, one per byte of its UTF-8 encoding.
//
// Unsafe: C0 controls (ESC, BEL, newline, tab, ...), DEL, C1 controls (U+0080–U+009F: U+009B is a
// CSI to many terminals), the line and paragraph separators U+2028/U+2029, the Unicode bidi
// controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069: they make a terminal show text in
// another order than it is), and lone surrogates (no valid UTF-8 exists for them; written as the
// three bytes WTF-8 gives them). Invalid UTF-8 read from /proc has already become U+FFFD, which is
// printable. Valid non-ASCII text (é, 中文) stays as it is.

const C0 = '\\u0000-\\u001f';
const C0_BUT_NEWLINE = '\\u0000-\\u0009\\u000b-\\u001f';
const OTHER = '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069';
const SURROGATE = '\\ud800-\\udfff'; // with the u flag a class matches only lone surrogates

const UNSAFE = new RegExp(`[${C0}${OTHER}${SURROGATE}]`, 'gu');
const UNSAFE_BUT_NEWLINE = new RegExp(`[${C0_BUT_NEWLINE}${OTHER}${SURROGATE}]`, 'gu');
/** A value for -r: the unsafe characters (all below 0x20 or above 0x7e), blanks, backslash, every non-ASCII character. */
const RAW = new RegExp(`[${C0} \\\\${OTHER}${SURROGATE}\\u0080-\\u{10ffff}]`, 'gu');
/** Unsafe characters JSON.stringify leaves as they are (it escapes C0 and lone surrogates itself). */
const JSON_UNESCAPED = new RegExp(`[${OTHER}]`, 'g');

function hexByte(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`;
}

/** \xNN for each byte of the character's UTF-8 encoding (WTF-8 for a lone surrogate). */
function hexBytes(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (cp >= 0xd800 && cp <= 0xdfff) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)].map(hexByte).join('');
  let out = '';
  for (const byte of Buffer.from(ch, 'utf8')) out += hexByte(byte);
  return out;
}

/**
 * A string from the machine, or text that quotes one (a message, a dashboard line, a doctor
 * finding), for text output: every unsafe character as \xNN, so it prints as one inert line.
 * Backslashes are left as they are (as ps does), so escaping twice changes nothing. With 'lines',
 * newlines are kept: for prose of several lines whose machine strings were escaped on their own.
 */
export function escapeText(text: string, keep: 'lines' | 'none' = 'none'): string {
  return text.replace(keep === 'lines' ? UNSAFE_BUT_NEWLINE : UNSAFE, hexBytes);
}

/**
 * A value for --raw, escaped as util-linux does (libsmartcols' raw format): on top of escapeText's
 * unsafe characters, blanks, backslash and every byte that is not ASCII become \xHH, so a value never
 * contains the separator.
 */
export function escapeRaw(text: string): string {
  return text.replace(RAW, hexBytes);
}

/**
 * A cell of a plain table (a pipe, a file): escapeText, and blanks as \x20 too, so that every cell is
 * one word for `column -t` and awk (a file name with a space in an mlock row, say). Other
 * characters stay readable, unlike -r's escapeRaw.
 */
export function escapeWord(text: string): string {
  return escapeText(text).replace(/ /g, '\\x20');
}

/**
 * JSON text as JSON.stringify made it, with DEL, C1, the separators and the bidi controls written
 * as \uNNNN too: the same document to a parser, nothing a terminal acts on when printed.
 */
export function escapeJson(json: string): string {
  return json.replace(JSON_UNESCAPED, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Characters a POSIX shell word may hold without quotes (the set GNU coreutils leaves bare). */
const SHELL_BARE = /^[A-Za-z0-9@%+=:,./_-]+$/;

/**
 * `word` as one POSIX shell word, for a fix the user may paste into a root shell: a unit name or a
 * cgroup path is chosen by whoever created it, and `$(…)`, `;` or a space in it must stay inert.
 * Single quotes (a quote inside becomes '\''); run through escapeText afterwards as all text is.
 */
export function shellWord(word: string): string {
  return word !== '' && SHELL_BARE.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
