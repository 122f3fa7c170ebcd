/** Delegable site tasks (ICH E6(R3) delegation log); shared by the server and the portal pages. */
export const TASKS = ["consent", "enrollment", "data_entry", "signoff"] as const;
export type Task = (typeof TASKS)[number];
