// Every scenario, in the order `scenario --list` and `scenario all` show and run them. Adding one is
// one import and one entry.

import { forkScenario } from './scenarios/fork.js';
import { munlockScenario } from './scenarios/munlock.js';
import { munmapScenario } from './scenarios/munmap.js';
import type { ScenarioDefinition } from './types.js';

export const SCENARIOS: readonly ScenarioDefinition[] = [
  forkScenario,
  munmapScenario,
  munlockScenario,
];

export function scenarioByName(name: string): ScenarioDefinition | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
