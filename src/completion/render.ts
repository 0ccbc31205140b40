// Small helpers shared by the bash, zsh and fish renderers.

import type { DynamicKind } from '../lib/completionHints.js';
import type { OptionSpec } from './spec.js';

/** `-s`, `--sort`: the flags an option answers to. */
export function flagsOf(option: OptionSpec): string[] {
  return [option.short, option.long].filter((flag): flag is string => flag !== null);
}

/** A shell function-name fragment for the program name. */
export function identifier(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/** The KIND argument of `completion --values KIND`: columns are per command. */
export function dynamicKind(source: DynamicKind, command: string): string {
  return source === 'columns' ? `columns:${command}` : source;
}
