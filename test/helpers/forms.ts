/** Form definitions several tests share. */

/** A repeating adverse-event log (visit LOG): a required term and a severity choice. */
export const ADVERSE_EVENTS_LOG = {
  code: "AE",
  title: "Adverse events",
  version: 1,
  visits: ["LOG"],
  repeating: true,
  fields: [
    { name: "term", label: "Adverse event", type: "text", required: true },
    {
      name: "severity",
      label: "Severity",
      type: "choice",
      options: [
        { value: "MILD", label: "Mild" },
        { value: "SEVERE", label: "Severe" },
      ],
    },
  ],
};
