/** A calendar date `YYYY-MM-DD` (UTC), the unit everything is archived by. */
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

export class InvalidDateError extends Error {
  override name = "InvalidDateError";
  constructor(
    readonly code: "invalid_date" | "date_not_closed",
    message: string,
  ) {
    super(message);
  }
}

/** Whether `value` is a real calendar date written `YYYY-MM-DD` (no 2025-02-30). */
export function isCalendarDate(value: string): boolean {
  if (!DATE_PATTERN.test(value)) return false;
  const parsed = new Date(`${value}T00:00:00.000Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === value;
}

/** The UTC date of an instant, `YYYY-MM-DD`. */
export function utcDate(instant: Date): string {
  return instant.toISOString().slice(0, 10);
}

/** The date `days` after `date` (negative for before). */
export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00.000Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return utcDate(d);
}

/**
 * Returns `value` if it is a closed day: a real date strictly before today
 * (UTC) at `now`. Rows of today may still arrive, so today is never archived.
 */
export function parseClosedDate(value: string, now: Date): string {
  if (!isCalendarDate(value)) {
    throw new InvalidDateError(
      "invalid_date",
      `date must be a real calendar date YYYY-MM-DD, got ${JSON.stringify(value.slice(0, 40))}`,
    );
  }
  const today = utcDate(now);
  if (value >= today) {
    throw new InvalidDateError(
      "date_not_closed",
      `date ${value} is not closed yet: only days before ${today} (UTC) can be archived`,
    );
  }
  return value;
}
