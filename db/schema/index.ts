export * from "./organizations.ts";
export * from "./users.ts";
export * from "./participants.ts";
export * from "./forms.ts";
export * from "./log.ts";
export * from "./audit.ts";
export * from "./consent-gate.ts";
export * from "./study-operations.ts";
