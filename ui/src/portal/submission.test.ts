import { describe, expect, it } from "vitest";
import { schedule, startAtFromLocal, submissionKey } from "./submission";

describe("submissionKey", () => {
  it("keeps the key while the values are the same, so a retry names the same submission", () => {
    const first = submissionKey(null, { hostname: "web01", size: 1 });
    expect(first.key).toMatch(/.{8,}/);
    expect(submissionKey(first, { hostname: "web01", size: 1 })).toBe(first);
  });
  it("makes a new key when the values change", () => {
    const first = submissionKey(null, { hostname: "web01" });
    const second = submissionKey(first, { hostname: "web02" });
    expect(second.key).not.toBe(first.key);
  });
  it("makes a new key when the start changes: another moment is another request", () => {
    const first = submissionKey(null, { hostname: "web01" }, "2030-01-31T08:00:00.000Z");
    expect(submissionKey(first, { hostname: "web01" }, "2030-01-31T08:00:00.000Z")).toBe(first);
    expect(submissionKey(first, { hostname: "web01" }, "2030-01-31T09:00:00.000Z").key).not.toBe(first.key);
    expect(submissionKey(first, { hostname: "web01" }).key).not.toBe(first.key);
  });
});

describe("startAtFromLocal", () => {
  it("reads the input's local time and sends the same moment in UTC", () => {
    const sent = startAtFromLocal("2030-01-31T09:30");
    expect(sent).toMatch(/^2030-01-31T\d\d:30:00\.000Z$/);
    expect(new Date(sent!).getTime()).toBe(new Date(2030, 0, 31, 9, 30).getTime());
  });
  it("leaves the start out when the input is empty or not a date", () => {
    expect(startAtFromLocal("")).toBeNull();
    expect(startAtFromLocal("soon")).toBeNull();
  });
});

describe("schedule", () => {
  const when = (iso: string) => `<${iso}>`;
  it("says when a request for later starts while it waits", () => {
    expect(schedule({ state: "queued", scheduled_for: "2030-01-31T08:00:00Z" }, when)).toBe("scheduled for <2030-01-31T08:00:00Z>");
  });
  it("says a request was cancelled before it started", () => {
    expect(schedule({ state: "failed", scheduled_for: "2030-01-31T08:00:00Z", cancelled: true }, when)).toBe("cancelled (was scheduled for <2030-01-31T08:00:00Z>)");
    expect(schedule({ state: "failed", cancelled: true }, when)).toBe("cancelled before it started");
  });
  it("says nothing of requests that started now or have started", () => {
    expect(schedule({ state: "queued", scheduled_for: null }, when)).toBeNull();
    expect(schedule({ state: "running", scheduled_for: "2030-01-31T08:00:00Z" }, when)).toBeNull();
  });
});
