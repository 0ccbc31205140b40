// Packing this checkout and installing the tarball, as a user (or an image build) does: shared by the
// packed-install test and the Containerfile test. `npm install` needs the registry; its network
// errors are recognised so that those tests skip and say why.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './spawn.js';

export interface CommandResult { status: number | null; stdout: string; stderr: string; error?: Error }

export function runCommand(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): CommandResult {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: options.cwd ?? ROOT, env: options.env ?? process.env, timeout: options.timeout ?? 60_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error };
}

export const NETWORK_ERROR = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/i;

/** The line of npm's stderr that says the registry could not be reached, or null. */
export function networkFailure(stderr: string): string | null {
  const line = stderr.split('\n').find((l) => NETWORK_ERROR.test(l));
  return line === undefined ? null : `npm could not reach the registry: ${line}`;
}

/**
 * `npm pack` of this checkout into `destination`; the tarball's path. --ignore-scripts: pack what
 * `npm run build` made (prepare would rebuild dist/ under running tests).
 */
export function packCheckout(destination: string): string {
  const pack = runCommand(['npm', 'pack', '--ignore-scripts', '--json', '--pack-destination', destination]);
  if (pack.status !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
  const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string }>;
  return join(destination, packed!.filename);
}
