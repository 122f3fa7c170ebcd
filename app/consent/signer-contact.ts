/** The signer's own contact for the link and the one-time code: an email address or a phone number. */
import { z } from "zod";

export const contactSchema = z.union(
  [
    z.string().trim().toLowerCase().email(),
    z
      .string()
      .trim()
      .regex(/^\+?[0-9 ()-]{5,25}$/),
  ],
  {
    error: "an email address or a phone number such as +44 20 7946 0000",
  },
);

/** A contact as shown to whoever holds the link: `j***@e***.org`; a phone number keeps its last two digits. */
export const maskContact = (c: string) =>
  c.includes("@") ? c.replace(/^(.).*(@.).*(\..+)$/, "$1***$2***$3") : c.replace(/.(?=.{2})/g, "*");
