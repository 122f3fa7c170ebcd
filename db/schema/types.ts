import { customType } from "drizzle-orm/pg-core";

/** PostgreSQL bytea as a Uint8Array (postgres.js returns a Buffer, which is a Uint8Array). */
export const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType() {
    return "bytea";
  },
  fromDriver(value) {
    return value instanceof Uint8Array ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : value;
  },
});
