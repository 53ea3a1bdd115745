// Pure (no imports): the provider interface, the adapters and the activity that resolves input
// images all take this shape from here.

/** An input image's bytes, to hand to a provider (fal storage, Replicate files). */
export interface InputImage {
  bytes: Buffer;
  /** image/png, image/jpeg or image/webp: checked by content when it was stored. */
  contentType: string;
  /** A name for the provider's records, e.g. `<upload id>.png`; never a client's file name. */
  fileName: string;
}

/** Where a provider can fetch an input image from, and until when (null: it does not expire). */
export interface ProviderInputUrl {
  url: string;
  expiresAt: Date | null;
}
