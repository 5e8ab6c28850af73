import { describe, expect, it } from "vitest";
import { addDays, InvalidDateError, isCalendarDate, parseClosedDate } from "./dates.ts";

const now = new Date("2026-03-10T12:00:00Z");

describe("dates", () => {
  it("accepts only real calendar dates", () => {
    expect(isCalendarDate("2024-02-29")).toBe(true);
    for (const bad of [
      "2025-02-29",
      "2025-02-30",
      "2025-13-01",
      "2025-1-01",
      "2025-01-01 ",
      "2025-01-01' OR 1=1",
      "",
    ]) {
      expect(isCalendarDate(bad)).toBe(false);
    }
  });

  it("refuses today and the future", () => {
    expect(parseClosedDate("2026-03-09", now)).toBe("2026-03-09");
    for (const open of ["2026-03-10", "2026-03-11", "2099-01-01"]) {
      expect(() => parseClosedDate(open, now)).toThrow(InvalidDateError);
      try {
        parseClosedDate(open, now);
      } catch (e) {
        expect((e as InvalidDateError).code).toBe("date_not_closed");
      }
    }
  });

  it("adds days across month ends", () => {
    expect(addDays("2024-02-28", 1)).toBe("2024-02-29");
    expect(addDays("2024-03-01", -1)).toBe("2024-02-29");
  });
});
