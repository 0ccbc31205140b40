// Import rules of the source layout, checked on the source text (cheap, and a violation names the file).

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Module specifiers of every static and dynamic import/export-from in a file. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"]([^'"]+)['"]/gm)) specs.push(m[1]!);
  return specs;
}

function resolved(file: string, spec: string): string {
  return spec.startsWith('.') ? path.relative(SRC, path.resolve(path.dirname(file), spec)) : spec;
}

describe('src/ffi holds bindings only', () => {
  const ffiFiles = sourceFiles(path.join(SRC, 'ffi'));

  it('finds the ffi sources', () => {
    expect(ffiFiles.map((f) => path.relative(SRC, f))).toContain('ffi/verbs/calls.ts');
  });

  it('no ffi file imports the engine, commands, observers or the UI, or throws usage errors', () => {
    const offenders: string[] = [];
    for (const file of ffiFiles) {
      for (const spec of importsOf(file)) {
        const target = resolved(file, spec);
        if (/^(engine|commands|observe|ui|fork|held)\//.test(target)) offenders.push(`${path.relative(SRC, file)} imports ${target}`);
      }
      if (/\bUsageError\b/.test(readFileSync(file, 'utf8'))) offenders.push(`${path.relative(SRC, file)} mentions UsageError`);
    }
    expect(offenders).toEqual([]);
  });

  it('the verbs constants load without koffi (commands import them before any FFI is needed)', () => {
    expect(importsOf(path.join(SRC, 'ffi/verbs/enums.ts'))).toEqual([]);
    expect(importsOf(path.join(SRC, 'engine/verbs/access.ts')).filter((s) => s === 'koffi' || s.includes('calls') || s.endsWith('verbs/index.js'))).toEqual([]);
  });
});

describe('one name, one meaning', () => {
  it('no two source files export a type or class of the same name', () => {
    const owners = new Map<string, string[]>();
    for (const file of sourceFiles(SRC)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/^export (?:abstract )?(?:interface|class|type) ([A-Za-z0-9_]+)/gm)) {
        owners.set(m[1]!, [...(owners.get(m[1]!) ?? []), path.relative(SRC, file)]);
      }
    }
    const shared = [...owners].filter(([, files]) => files.length > 1).map(([name, files]) => `${name}: ${files.join(', ')}`);
    expect(shared).toEqual([]);
  });
});

describe('only src/program.ts imports command files', () => {

  it('no other file imports src/commands/*', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const rel = path.relative(SRC, file);
      if (rel === 'program.ts') continue;
      for (const spec of importsOf(file)) {
        const target = resolved(file, spec);
        if (!target.startsWith('commands/')) continue;
        offenders.push(`${rel} imports ${target}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('/proc and sysfs are read through src/proc', () => {
  // A whole /proc or /sys path as a string literal is a read, except the `file` an evidence record
  // names; messages that mention a path (with words around it) are not. Nor may a file build paths
  // from src/proc's roots itself. src/ffi is exempt: it holds the syscalls.
  const PATH_LITERAL = /(?<!\bfile:\s*)(['"`])\/(?:proc|sys)(?:\/[^\s'"`]*)?\1/;
  const PROC_ROOTS = /\b(?:PROC_ROOT|NODE_ROOT|INFINIBAND_CLASS)\b/;

  it('no file outside src/proc and src/ffi reads /proc or /sys paths itself', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const rel = path.relative(SRC, file);
      if (rel.startsWith('proc/') || rel.startsWith('ffi/')) continue;
      const text = readFileSync(file, 'utf8');
      const literal = PATH_LITERAL.exec(text);
      if (literal) offenders.push(`${rel}: ${literal[0]}`);
      const root = PROC_ROOTS.exec(text);
      if (root) offenders.push(`${rel}: ${root[0]}`);
    }
    expect(offenders).toEqual([]);
  });

  it('the rule catches a read and lets evidence and messages be', () => {
    expect(PATH_LITERAL.test("readdirSync('/sys/class/infiniband')")).toBe(true);
    expect(PATH_LITERAL.test("for (const name of readdirSync('/proc'))")).toBe(true);
    expect(PATH_LITERAL.test('openSync(`/proc/${pid}/mem`)')).toBe(true);
    expect(PATH_LITERAL.test("{ file: '/proc/meminfo' }")).toBe(false);
    expect(PATH_LITERAL.test('`/proc/${pid}/cgroup is gone (the process exited)`')).toBe(false);
  });
});
