/** QR codes for links (invitations, public verification pages): PNG as a data: URL for pages, a buffer for PDFs. */
import QRCode from "qrcode";

export function qrDataUrl(text: string): Promise<string> {
  return QRCode.toDataURL(text, { errorCorrectionLevel: "M", margin: 1, width: 320 });
}

export function qrPng(text: string): Promise<Buffer> {
  return QRCode.toBuffer(text, { errorCorrectionLevel: "M", margin: 1, width: 320 });
}
