import { describe, expect, it } from "vitest";
import { dispenseRefusal, type KitFacts, kitLocation, kitState, publicKitCheck } from "./kit-state.ts";

const base = (): KitFacts => ({
  id: "k1",
  number: "123456",
  units: 30,
  lotId: "l1",
  lotReleased: true,
  lotRecalled: false,
  expiresOn: "2027-06-30",
  shipment: {
    id: "s1",
    number: "SHP-0001",
    siteId: "site-1",
    siteCode: "S1",
    received: true,
    excursion: false,
    decision: null,
  },
  dispensed: null,
  returned: false,
  destroyed: false,
});
const at = { siteId: "site-1", siteCode: "S1", today: "2027-01-10", matches: true };
const withShipment = (p: Partial<NonNullable<KitFacts["shipment"]>>): KitFacts => {
  const f = base();
  return { ...f, shipment: { ...(f.shipment as NonNullable<KitFacts["shipment"]>), ...p } };
};

describe("kit state (issue 21)", () => {
  it("follows a kit from the depot to its destruction", () => {
    expect(kitLocation({ ...base(), shipment: null })).toBe("at_depot");
    expect(kitLocation(withShipment({ received: false }))).toBe("in_transit");
    expect(kitLocation(withShipment({ excursion: true }))).toBe("quarantined");
    expect(kitLocation(withShipment({ excursion: true, decision: "release" }))).toBe("on_hand");
    expect(kitLocation(withShipment({ excursion: true, decision: "destroy" }))).toBe("rejected");
    expect(kitLocation(base())).toBe("on_hand");
    expect(kitLocation({ ...base(), dispensed: { subject: "S1-001", siteId: "site-1" } })).toBe("dispensed");
    expect(kitLocation({ ...base(), dispensed: { subject: "S1-001", siteId: "site-1" }, returned: true })).toBe(
      "returned",
    );
    expect(kitLocation({ ...base(), returned: true, destroyed: true })).toBe("destroyed");
  });

  it("a kit is usable through its expiry day, expired the day after", () => {
    expect(kitState(base(), "2027-06-30")).toMatchObject({ expired: false, dispensable: true });
    expect(kitState(base(), "2027-07-01")).toMatchObject({ expired: true, dispensable: false });
  });

  it("names each reason a kit cannot be dispensed, and none for the right kit", () => {
    expect(dispenseRefusal(base(), at)).toBeNull();
    const cases: [KitFacts, Partial<typeof at>, RegExp][] = [
      [{ ...base(), destroyed: true }, {}, /destroyed/],
      [{ ...base(), dispensed: { subject: "S1-002", siteId: "site-1" } }, {}, /already been dispensed \(to S1-002\)/],
      [{ ...base(), lotRecalled: true }, {}, /recalled/],
      [withShipment({ excursion: true }), {}, /quarantined/],
      [withShipment({ excursion: true, decision: "destroy" }), {}, /rejected/],
      [{ ...base(), lotReleased: false }, {}, /not released/],
      [base(), { today: "2027-07-01" }, /expired on 2027-06-30/],
      [{ ...base(), shipment: null }, {}, /at the depot/],
      [base(), { siteId: "site-2", siteCode: "S2" }, /another site, not to S2/],
      [withShipment({ received: false }), {}, /not been received/],
      [base(), { matches: false }, /does not match this participant's allocation/],
    ];
    for (const [f, over, why] of cases) expect(dispenseRefusal(f, { ...at, ...over })).toMatch(why);
  });

  it("a kit not at this site is refused as such before any other reason (nothing said of another site's kit)", () => {
    const s2 = { siteId: "site-2", siteCode: "S2" };
    const elsewhere: KitFacts[] = [
      { ...base(), dispensed: { subject: "S1-001", siteId: "site-1" } },
      { ...base(), destroyed: true },
      { ...base(), lotRecalled: true },
      withShipment({ excursion: true }),
    ];
    for (const f of elsewhere)
      expect(dispenseRefusal(f, { ...at, ...s2 })).toBe("kit 123456 belongs to another site, not to S2");
    expect(dispenseRefusal(base(), { ...at, ...s2, today: "2028-01-01" })).toMatch(/another site/);
    expect(dispenseRefusal({ ...base(), shipment: null, destroyed: true }, at)).toMatch(/at the depot/);
    expect(dispenseRefusal({ ...base(), shipment: null, lotRecalled: true }, { ...at, today: "2028-01-01" })).toMatch(
      /at the depot/,
    );
    expect(dispenseRefusal(withShipment({ received: false }), { ...at, today: "2028-01-01" })).toMatch(
      /not been received/,
    );
  });

  it("the public check: rejected and returned kits are held (quarantined); a destroyed kit is no kit", () => {
    const c = publicKitCheck(withShipment({ excursion: true }), "2027-07-01");
    expect(c).toEqual({ genuine: true, kit: "123456", recalled: false, quarantined: true, expired: true });
    expect(publicKitCheck(base(), "2027-01-10")?.quarantined).toBe(false);
    expect(publicKitCheck(withShipment({ excursion: true, decision: "destroy" }), "2027-01-10")?.quarantined).toBe(
      true,
    );
    const returned = { ...base(), dispensed: { subject: "S1-001", siteId: "site-1" }, returned: true };
    expect(publicKitCheck(returned, "2027-01-10")?.quarantined).toBe(true);
    expect(publicKitCheck({ ...returned, destroyed: true }, "2027-01-10")).toBeNull();
  });
});
