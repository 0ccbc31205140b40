// Every scenario, in the order `scenario --list` and `scenario all` show and run them. Adding one is
// one import and one entry.

import { forkScenario } from './scenarios/fork.js';
import type { ScenarioDefinition } from './types.js';

export const SCENARIOS: readonly ScenarioDefinition[] = [
  forkScenario,
];

export function scenarioByName(name: string): ScenarioDefinition | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
