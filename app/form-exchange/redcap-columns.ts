/**
 * The 18 columns of a REDCap data dictionary (its header row, column A to R), in REDCap's order and spelling. Kept
 * apart from the reader (which needs csv-parse, a Node module) so that pages can tell a dictionary apart in the
 * browser.
 */
export const REDCAP_COLUMNS = [
  "Variable / Field Name",
  "Form Name",
  "Section Header",
  "Field Type",
  "Field Label",
  "Choices, Calculations, OR Slider Labels",
  "Field Note",
  "Text Validation Type OR Show Slider Number",
  "Text Validation Min",
  "Text Validation Max",
  "Identifier?",
  "Branching Logic (Show field only if...)",
  "Required Field?",
  "Custom Alignment",
  "Question Number (surveys only)",
  "Matrix Group Name",
  "Matrix Ranking?",
  "Field Annotation",
] as const;
