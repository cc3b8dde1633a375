import { describe, expect, it } from "vitest";
import { submissionKey } from "./submission";

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
});
