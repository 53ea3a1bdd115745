// One 256-colour palette for a whole animation (median cut), and the mapping of frames onto it.

/** Colours in a GIF palette (the encoder's colour table has exactly this many). */
export const PALETTE_SIZE = 256;

/**
 * Median-cut colour quantizer: builds one 256-colour palette from sample RGBA frames (colours bucketed to
 * 5 bits per channel), then maps any RGBA frame to palette indices by nearest colour.
 */
export class PaletteQuantizer {
  readonly palette: Uint8Array;
  private readonly nearest = new Int16Array(1 << 15).fill(-1);

  private constructor(palette: Uint8Array) {
    this.palette = palette;
  }

  static fromSamples(samples: readonly Uint8Array[]): PaletteQuantizer {
    return new PaletteQuantizer(medianCut(ColourHistogram.of(samples)));
  }

  indexFrame(rgba: Uint8Array): Uint8Array {
    const out = new Uint8Array(rgba.length >> 2);
    for (let p = 0, i = 0; p < out.length; p++, i += 4) {
      const bucket = bucketOf(rgba[i]!, rgba[i + 1]!, rgba[i + 2]!);
      let index = this.nearest[bucket]!;
      if (index < 0) {
        index = this.closestEntry(bucket);
        this.nearest[bucket] = index;
      }
      out[p] = index;
    }
    return out;
  }

  private closestEntry(bucket: number): number {
    const [r, g, b] = bucketCentre(bucket);
    let best = 0;
    let bestDistance = Infinity;
    for (let e = 0; e < PALETTE_SIZE; e++) {
      const dr = this.palette[e * 3]! - r;
      const dg = this.palette[e * 3 + 1]! - g;
      const db = this.palette[e * 3 + 2]! - b;
      const distance = dr * dr + dg * dg + db * db;
      if (distance < bestDistance) {
        bestDistance = distance;
        best = e;
      }
    }
    return best;
  }
}

function bucketOf(r: number, g: number, b: number): number {
  return ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
}

function bucketCentre(bucket: number): [number, number, number] {
  return [(((bucket >> 10) & 31) << 3) | 4, (((bucket >> 5) & 31) << 3) | 4, ((bucket & 31) << 3) | 4];
}

class ColourHistogram {
  readonly count = new Uint32Array(1 << 15);
  readonly sum = new Float64Array(3 << 15); // per bucket: summed r, g, b of the real pixels

  static of(samples: readonly Uint8Array[]): ColourHistogram {
    const h = new ColourHistogram();
    for (const rgba of samples) {
      for (let i = 0; i < rgba.length; i += 4) {
        const bucket = bucketOf(rgba[i]!, rgba[i + 1]!, rgba[i + 2]!);
        h.count[bucket]!++;
        h.sum[bucket * 3]! += rgba[i]!;
        h.sum[bucket * 3 + 1]! += rgba[i + 1]!;
        h.sum[bucket * 3 + 2]! += rgba[i + 2]!;
      }
    }
    return h;
  }

  usedBuckets(): number[] {
    const used: number[] = [];
    for (let bucket = 0; bucket < this.count.length; bucket++) {
      if (this.count[bucket]! > 0) used.push(bucket);
    }
    return used;
  }
}

/** Channel value (0..31) of a bucket: channel 0 = red, 1 = green, 2 = blue. */
function channelOf(bucket: number, channel: number): number {
  return (bucket >> (10 - channel * 5)) & 31;
}

interface Box {
  buckets: number[];
  population: number;
  channel: number; // the channel with the widest range
  range: number;
}

function makeBox(buckets: number[], h: ColourHistogram): Box {
  let population = 0;
  const min = [31, 31, 31];
  const max = [0, 0, 0];
  for (const bucket of buckets) {
    population += h.count[bucket]!;
    for (let c = 0; c < 3; c++) {
      const v = channelOf(bucket, c);
      min[c] = Math.min(min[c]!, v);
      max[c] = Math.max(max[c]!, v);
    }
  }
  const ranges = [0, 1, 2].map((c) => max[c]! - min[c]!);
  const channel = ranges.indexOf(Math.max(...ranges));
  return { buckets, population, channel, range: ranges[channel]! };
}

function medianCut(h: ColourHistogram): Uint8Array {
  const boxes = [makeBox(h.usedBuckets(), h)];
  while (boxes.length < PALETTE_SIZE) {
    const index = widestBox(boxes);
    if (index < 0) break;
    const [a, b] = splitBox(boxes[index]!, h);
    boxes.splice(index, 1, a, b);
  }
  const palette = new Uint8Array(PALETTE_SIZE * 3);
  boxes.forEach((box, i) => palette.set(meanColour(box, h), i * 3));
  return palette;
}

/** The splittable box with the largest population × range, -1 when every box is a single bucket. */
function widestBox(boxes: Box[]): number {
  let best = -1;
  let bestScore = 0;
  boxes.forEach((box, i) => {
    const score = box.population * box.range;
    if (box.buckets.length > 1 && score > bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best;
}

function splitBox(box: Box, h: ColourHistogram): [Box, Box] {
  const sorted = [...box.buckets].sort(
    (x, y) => channelOf(x, box.channel) - channelOf(y, box.channel) || x - y,
  );
  let seen = 0;
  let cut = 1;
  while (cut < sorted.length - 1 && seen + h.count[sorted[cut - 1]!]! < box.population / 2) {
    seen += h.count[sorted[cut - 1]!]!;
    cut++;
  }
  return [makeBox(sorted.slice(0, cut), h), makeBox(sorted.slice(cut), h)];
}

function meanColour(box: Box, h: ColourHistogram): number[] {
  const total = [0, 0, 0];
  for (const bucket of box.buckets) {
    for (let c = 0; c < 3; c++) total[c]! += h.sum[bucket * 3 + c]!;
  }
  return total.map((t) => (box.population > 0 ? Math.round(t / box.population) : 0));
}
