import { describe, expect, it } from "vitest";
import type { RequestApproval, RequestStep } from "../api";
import { stepNote } from "./steps";

const step = (state: string | null, extra: Partial<RequestStep> = {}): RequestStep => ({
  id: "approve", task_id: "approve", title: null, state, start_date: null, end_date: null, ...extra,
});
const approval = (state: string, step_id = "approve") => ({ id: "1", kind: "approval", step_id, subject: null, state, votes: [], slots: [] }) as unknown as RequestApproval;
const iso = (s: string) => `at ${s}`;

describe("stepNote", () => {
  it("says a decided approval whose step still waits continues shortly", () => {
    expect(stepNote(step("awaiting_input", { start_date: "t0" }), [approval("approved")], iso)).toBe("approved; continuing shortly");
    expect(stepNote(step("awaiting_input"), [approval("timed_out")], iso)).toBe("timed out; continuing shortly");
  });
  it("keeps the times while the approval is pending or belongs to another step", () => {
    expect(stepNote(step("awaiting_input", { start_date: "t0" }), [approval("pending")], iso)).toBe("started at t0");
    expect(stepNote(step("awaiting_input", { start_date: "t0" }), [approval("approved", "other")], iso)).toBe("started at t0");
    expect(stepNote(step("awaiting_input", { start_date: "t0" }), [approval("closed")], iso)).toBe("started at t0");
  });
  it("says when a step finished, started, or nothing", () => {
    expect(stepNote(step("success", { start_date: "t0", end_date: "t1" }), [approval("approved")], iso)).toBe("finished at t1");
    expect(stepNote(step(null), [], iso)).toBe("");
  });
});
