// Every scenario, in the order `scenario --list` and `scenario all` show and run them. Adding one is
// one import and one entry.

import { exitScenario } from './scenarios/exit.js';
import { forkScenario } from './scenarios/fork.js';
import { migrateScenario } from './scenarios/migrate.js';
import { munlockScenario } from './scenarios/munlock.js';
import { munmapScenario } from './scenarios/munmap.js';
import { overlapLifetimeScenario } from './scenarios/overlapLifetime.js';
import { readonlyPrivateScenario } from './scenarios/readonlyPrivate.js';
import { truncateScenario } from './scenarios/truncate.js';
import type { ScenarioDefinition } from './types.js';

export const SCENARIOS: readonly ScenarioDefinition[] = [
  forkScenario,
  munmapScenario,
  exitScenario,
  munlockScenario,
  overlapLifetimeScenario,
  readonlyPrivateScenario,
  truncateScenario,
  migrateScenario,
];

export function scenarioByName(name: string): ScenarioDefinition | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
