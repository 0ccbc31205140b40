// placeholder replaced below
import { Command } from 'commander';
import type { Context } from '../lib/context.js';
export function devicesCommand(_ctx: Context): Command { return new Command('devices'); }
