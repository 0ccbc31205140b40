// makeProgram() wires one Command per file in src/commands/. Commands throw; cli.ts turns what they
// throw into a message and an exit code.

import { packageVersion } from './lib/version.js';
import { Command } from 'commander';
import type { Context } from './lib/context.js';

type CommandFactory = (ctx: Context) => Command;

// One loader per command file, in help order. Only the command being run is loaded (so `stat` never
// loads the FFI, and `--version` loads no command at all); `--help` and unknown commands load all.
const COMMANDS: ReadonlyArray<readonly [string, () => Promise<CommandFactory>]> = [
  ['reg', async () => (await import('./commands/reg.js')).regCommand],
  ['dereg', async () => (await import('./commands/dereg.js')).deregCommand],
  ['devices', async () => (await import('./commands/devices.js')).devicesCommand],
  ['limits', async () => (await import('./commands/limits.js')).limitsCommand],
  ['stat', async () => (await import('./commands/stat.js')).statCommand],
  ['ls', async () => (await import('./commands/ls.js')).lsCommand],
  ['fork', async () => (await import('./commands/fork.js')).forkCommand],
  ['scenario', async () => (await import('./commands/scenario.js')).scenarioCommand],
  ['doctor', async () => (await import('./commands/doctor.js')).doctorCommand],
  ['trace', async () => (await import('./commands/trace.js')).traceCommand],
  ['top', async () => (await import('./commands/top.js')).topCommand],
  ['exporter', async () => (await import('./commands/exporter.js')).exporterCommand],
  // completion reads the program it completes (commands, options, columns): it is handed makeProgram
  // rather than importing this file.
  ['completion', async () => {
    const { completionCommand } = await import('./commands/completion.js');
    return (ctx) => completionCommand(ctx, (args) => makeProgram(ctx, args));
  }],
];

/** The command files `args` needs: the named command, none for a bare --version, else all. */
function commandsFor(args: readonly string[]): ReadonlyArray<readonly [string, () => Promise<CommandFactory>]> {
  const first = args.find((a) => !a.startsWith('-'));
  const named = COMMANDS.find(([name]) => name === first);
  if (named) return [named];
  if (first === undefined && args.some((a) => a === '-V' || a === '--version')) return [];
  return COMMANDS;
}


const EXIT_HELP = `
Exit status:
  0  success
  1  runtime failure (the kernel or a library refused, e.g. over RLIMIT_MEMLOCK); doctor: a check failed
  2  usage error (bad option, size or value)
  3  not supported here (no RDMA device, no ODP, io_uring disabled, no hugepages)
  4  permission denied
  5  a requested expectation did not hold (fork --expect, scenario --expect)
  128+n  stopped by signal n after cleaning up (130 SIGINT, 143 SIGTERM; fork, scenario)

Environment:
  RDMACTL_DEBUG=1  print stack traces with errors
  NO_COLOR         never colour output

Sizes: ${'bytes or K/M/G/T (KB, KiB… accepted): every suffix is a power of 1024, like "kB" in /proc.'}
See rdmactl(1) for the JSON keys, which are a stable interface.`;

/** Apply the settings every command shares: output through ctx, usage errors instead of process.exit. */
function configure(command: Command, ctx: Context): void {
  command
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
      outputError: (text, write) => write(`rdmactl: ${text.replace(/^error: /, '')}`),
    })
    // Descriptions are laid out by hand (≤ 100 columns); don't re-wrap them at 80.
    .configureHelp({ helpWidth: 110 })
    .showHelpAfterError(`(run 'rdmactl ${command.name() === 'rdmactl' ? '' : `${command.name()} `}--help' for usage)`);
  giveJsonItsLetter(command);
  for (const sub of command.commands) configure(sub, ctx);
}

/** `-J` for `--json` on every command that has --json and a free -J (lsblk, lsfd and findmnt spell it so). */
function giveJsonItsLetter(command: Command): void {
  const json = command.options.find((option) => option.long === '--json');
  if (!json || json.short !== undefined || command.options.some((option) => option.short === '-J')) return;
  json.short = '-J';
  json.flags = `-J, ${json.flags}`;
}

export async function makeProgram(ctx: Context, args: readonly string[] = []): Promise<Command> {
  const program = new Command('rdmactl')
    .description('Show and test what RDMA memory registration does to this machine\'s memory:\npinned and locked pages, RLIMIT_MEMLOCK accounting, and fork behaviour.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .addHelpText('after', EXIT_HELP)
    .showSuggestionAfterError(true);
  for (const [, load] of commandsFor(args)) program.addCommand((await load())(ctx));
  configure(program, ctx);
  return program;
}
