/** "1 process", "2 processes": a count with the noun that agrees with it. */
export function counted(count: number, singular: string, plural: string): string {
  return `${count} ${count === 1 ? singular : plural}`;
}
