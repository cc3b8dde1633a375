import { describe, expect, it } from "vitest";
import {
  deliveriesQuery, filtersFromQuery, filtersToQuery, headerRows, isMasked, isoToLocalInput, localInputToIso, maskedCount, NO_FILTERS,
  canReplay, isTruncated, pageInfo, prettyPayload, replayProblem, senderUrl, STATUSES, statusBadge, withFilter,
} from "./deliveries";

describe("the delivery log's filters", () => {
  it("go into the API's query string, empty ones left out, with the page", () => {
    expect(deliveriesQuery(NO_FILTERS)).toBe("?limit=50&offset=0");
    const q = new URLSearchParams(
      deliveriesQuery({ alert: "backup_array_events", status: "rejected", since: "2026-05-01T10:00:00.000Z", until: "2026-05-02T10:00:00.000Z", offset: 100 }),
    );
    expect(Object.fromEntries(q)).toEqual({
      alert: "backup_array_events",
      status: "rejected",
      since: "2026-05-01T10:00:00.000Z",
      until: "2026-05-02T10:00:00.000Z",
      limit: "50",
      offset: "100",
    });
    expect(deliveriesQuery({ alert: "a b&c" }, 10)).toBe("?alert=a+b%26c&limit=10&offset=0");
    expect(deliveriesQuery({ offset: -5 })).toBe("?limit=50&offset=0");
  });

  it("round-trip through the page's URL query", () => {
    const filters = { alert: "ci", status: "invalid", since: "2026-05-01T10:00:00.000Z", until: "", offset: 50 };
    expect(filtersToQuery(filters)).toBe("?alert=ci&status=invalid&since=2026-05-01T10%3A00%3A00.000Z&offset=50");
    expect(filtersFromQuery(new URLSearchParams(filtersToQuery(filters)))).toEqual(filters);
    expect(filtersToQuery(NO_FILTERS)).toBe("");
    expect(filtersFromQuery(new URLSearchParams(""))).toEqual(NO_FILTERS);
  });

  it("drop what the URL holds that makes no sense instead of sending it", () => {
    const f = filtersFromQuery(new URLSearchParams("status=ok&since=yesterday&until=2026-13-45&offset=-3&alert=%20x%20"));
    expect(f).toEqual({ alert: "x", status: "", since: "", until: "", offset: 0 });
    expect(filtersFromQuery(new URLSearchParams("offset=1.5")).offset).toBe(0);
  });

  it("start again at the first page when one changes", () => {
    expect(withFilter({ ...NO_FILTERS, offset: 100 }, "status", "failed")).toEqual({ ...NO_FILTERS, status: "failed", offset: 0 });
  });

  it("turn a datetime-local value into UTC ISO and back", () => {
    const iso = localInputToIso("2026-05-01T10:30");
    expect(iso).toBe(new Date(2026, 4, 1, 10, 30).toISOString());
    expect(isoToLocalInput(iso)).toBe("2026-05-01T10:30");
    expect(localInputToIso("")).toBe("");
    expect(localInputToIso("not a time")).toBe("");
    expect(isoToLocalInput("")).toBe("");
  });
});

describe("pages of the log", () => {
  it("say which rows are shown and where the previous and next pages start", () => {
    expect(pageInfo(0, 50, 230)).toEqual({ text: "1–50 of 230", previous: null, next: 50 });
    expect(pageInfo(50, 50, 230)).toEqual({ text: "51–100 of 230", previous: 0, next: 100 });
    expect(pageInfo(200, 30, 230)).toEqual({ text: "201–230 of 230", previous: 150, next: null });
    expect(pageInfo(0, 0, 0)).toEqual({ text: "0 of 0", previous: null, next: null });
  });
});

describe("status badges", () => {
  it("look like success only for accepted deliveries", () => {
    expect(statusBadge("accepted").className).toContain("success");
    for (const s of ["rejected", "invalid", "failed"]) {
      expect(statusBadge(s).className).not.toContain("success");
      expect(statusBadge(s).className).toMatch(/failed|warn/);
      expect(statusBadge(s).ok).toBe(false);
    }
    for (const s of ["duplicate", "filtered"]) expect(statusBadge(s).className).toBe("badge");
  });
  it("exist for every status, each explained", () => {
    for (const s of STATUSES) expect(statusBadge(s).description.length).toBeGreaterThan(10);
    expect(statusBadge("something_new")).toMatchObject({ className: "badge", label: "something new", ok: false });
  });
});

describe("a stored delivery", () => {
  it("shows masked values as masked", () => {
    for (const v of ["***", "********", "[masked]", "<redacted>", "MASKED", "*** (masked)"]) expect(isMasked(v)).toBe(true);
    for (const v of ["secret", "**", "masked value", 3, null, { a: "***" }]) expect(isMasked(v)).toBe(false);
  });
  it("lists headers by name, lower case, flagging the masked ones", () => {
    expect(headerRows({ "X-Hub-Signature-256": "***", "content-type": "application/json", "x-count": 3 as unknown as string })).toEqual([
      { name: "content-type", value: "application/json", masked: false },
      { name: "x-count", value: "3", masked: false },
      { name: "x-hub-signature-256", value: "***", masked: true },
    ]);
    expect(headerRows(null)).toEqual([]);
  });
  it("pretty-prints JSON payloads and keeps other text as it is", () => {
    expect(prettyPayload({ a: 1, b: [true] })).toBe('{\n  "a": 1,\n  "b": [\n    true\n  ]\n}');
    expect(prettyPayload('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(prettyPayload("host=web01&x=1")).toBe("host=web01&x=1");
    expect(prettyPayload(null)).toBe("");
  });
  it("counts masked values anywhere in a payload", () => {
    expect(maskedCount({ token: "***", nested: { list: [{ password: "[masked]" }, "ok"] }, n: 1 })).toBe(2);
    expect(maskedCount("plain")).toBe(0);
  });
  it("gives the sender an absolute URL", () => {
    expect(senderUrl("/autopilot/api/v1/alerts/x", "http://h:8080")).toBe("http://h:8080/autopilot/api/v1/alerts/x");
    expect(senderUrl("https://a.example/autopilot/api/v1/alerts/x", "http://h:8080")).toBe("https://a.example/autopilot/api/v1/alerts/x");
  });
});

describe("a refused replay", () => {
  it("says plainly that replay is for admins, or why there is nothing to replay", () => {
    expect(replayProblem(403, "you may not replay alert deliveries")).toBe(
      "Only admins may replay deliveries (the 'Autopilot Alerts' permission): you may not replay alert deliveries",
    );
    expect(replayProblem(409, "delivery 3 kept no payload")).toBe("Nothing to replay: delivery 3 kept no payload");
    expect(replayProblem(503, "the DAG is not parsed yet")).toBe("Not replayed: the DAG is not parsed yet");
  });
});

describe("which deliveries can be replayed", () => {
  it("only those whose payload was kept whole", () => {
    expect(canReplay({ host: "web01" })).toBe(true);
    expect(canReplay("host=web01")).toBe(true);
    expect(canReplay([])).toBe(true);
    expect(canReplay(null)).toBe(false); // a refused delivery keeps none
    expect(canReplay({ _truncated: true })).toBe(false);
    expect(isTruncated({ _truncated: true })).toBe(true);
    expect(isTruncated({ _truncated: "yes", a: 1 })).toBe(false);
  });
});
