// Help and prose text that wraps before 100 columns, shared by the commands that generate their
// --help from tables (fork, scenario) and print long summaries.

/** Text wrapped at spaces before `width` columns; continuation lines start with `indent`. */
export function wrapWords(text: string, width = 100, indent = '  '): string {
  const lead = /^ */.exec(text)![0];
  const lines: string[] = [];
  let line = lead;
  for (const word of text.slice(lead.length).split(' ')) {
    if (line.trim() !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = `${indent}${word}`;
    } else {
      line = line.trim() === '' ? `${line}${word}` : `${line} ${word}`;
    }
  }
  return [...lines, line].join('\n');
}

/** Two-column help: names padded to one width after `lead`, each text wrapped under itself before 100 columns. */
export function helpList(rows: ReadonlyArray<readonly [string, string]>, lead = '  '): string {
  const width = Math.max(...rows.map(([name]) => name.length));
  const indent = ' '.repeat(lead.length + width + 2);
  return rows.map(([name, text]) => wrapWords(`${lead}${name.padEnd(width)}  ${text}`, 100, indent)).join('\n');
}
