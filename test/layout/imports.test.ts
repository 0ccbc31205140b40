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

// ---- The import graph: no cycles, no upward arrows ----------------------------------------------

const allSources = new Set(sourceFiles(SRC));

/** The source file (relative to src/) an import names; null for a package or a file outside src/. */
function sourceOf(file: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const target = path.resolve(path.dirname(file), spec);
  for (const candidate of [target.replace(/\.js$/, '.ts'), target.replace(/\.js$/, '.tsx'), path.join(target, 'index.ts')]) {
    if (allSources.has(candidate)) return path.relative(SRC, candidate);
  }
  return null;
}

/** Every src file → the src files it imports: static, dynamic, type-only, side-effect and re-exports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of allSources) {
    const targets = importsOf(file).map((spec) => sourceOf(file, spec)).filter((t): t is string => t !== null);
    graph.set(path.relative(SRC, file), [...new Set(targets)]);
  }
  return graph;
}

/** One cycle through each strongly connected part of `graph` (Tarjan), as `a → b → a`. */
function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const parts: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const part: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      part.push(member);
    } while (member !== node);
    if (part.length > 1 || (graph.get(node) ?? []).includes(node)) parts.push(part);
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  // Shortest way round from the part's first member back to it (breadth first, inside the part).
  return parts.map((part) => {
    const members = new Set(part);
    const start = [...part].sort()[0]!;
    const from = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const node = queue.shift()!;
      for (const next of graph.get(node) ?? []) {
        if (!members.has(next)) continue;
        if (next === start) {
          const way = [node];
          while (way[0] !== start) way.unshift(from.get(way[0]!)!);
          return [...way, start].join(' → ');
        }
        if (!from.has(next)) {
          from.set(next, node);
          queue.push(next);
        }
      }
    }
    return part.join(', ');
  });
}

/**
 * The floor order, lowest first. A module imports modules of its own layer or lower ones, never of a
 * higher one. lib's error types are the floor: every layer throws them, the bindings included (with
 * the size formatting their messages use). Directories that share a layer import each other in one
 * direction only: that is the no-cycle rule between directories below.
 */
const LAYERS: ReadonlyArray<{ name: string; files: RegExp }> = [
  { name: "lib's error types", files: /^lib\/(errors|errno|failure|size)\.ts$/ },
  { name: 'ffi (bindings)', files: /^ffi\// },
  { name: 'proc, rdma (readers)', files: /^(proc|rdma)\// },
  { name: 'lib, engine', files: /^(lib|engine)\// },
  { name: 'held, observe, fork, scenario, doctor, exporter, trace', files: /^(held|observe|fork|scenario|doctor|exporter|trace)\// },
  { name: 'ui, completion', files: /^(ui|completion)\// },
  { name: 'commands', files: /^commands\// },
  { name: 'program.ts', files: /^program\.ts$/ },
  { name: 'cli.ts', files: /^cli\.ts$/ },
  { name: 'main.ts', files: /^main\.ts$/ },
];

function layerOf(file: string): number {
  return LAYERS.findIndex((layer) => layer.files.test(file));
}

/** The directory a file belongs to (`fork` for fork/runner.ts); a file at the top is its own. */
function directoryOf(file: string): string {
  return file.includes('/') ? file.slice(0, file.indexOf('/')) : file;
}

describe('no import cycles', () => {
  const graph = importGraph();

  it('reads the graph (imports of every kind resolve to source files)', () => {
    expect(graph.get('cli.ts')).toContain('program.ts');
    expect(graph.get('program.ts')).toContain('commands/completion.ts'); // dynamic
    expect(graph.get('main.ts')).toContain('lib/debugSignal.ts'); // side effect only
    expect(graph.get('doctor/attribution.ts')).toContain('doctor/types.ts'); // type-only import
    expect(graph.get('fork/scenario.ts')).toContain('fork/runner.ts'); // export * from
  });

  it('no source file imports itself back, through any number of files (type-only imports count)', () => {
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('no two directories import each other, through any number of directories', () => {
    const directories = new Map<string, string[]>();
    for (const [file, targets] of graph) {
      const from = directoryOf(file);
      const to = new Set(directories.get(from) ?? []);
      for (const target of targets) if (directoryOf(target) !== from) to.add(directoryOf(target));
      directories.set(from, [...to]);
    }
    expect(cyclesOf(directories)).toEqual([]);
  });
});

describe('the floor order', () => {
  const graph = importGraph();

  it('every source file is in a layer', () => {
    expect([...graph.keys()].filter((file) => layerOf(file) < 0)).toEqual([]);
  });

  it('no module imports a module of a higher layer', () => {
    const offenders: string[] = [];
    for (const [file, targets] of graph) {
      for (const target of targets) {
        if (layerOf(target) > layerOf(file)) offenders.push(`${file} (${LAYERS[layerOf(file)]?.name}) imports ${target} (${LAYERS[layerOf(target)]?.name})`);
      }
    }
    expect(offenders).toEqual([]);
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
