import yauzl from 'yauzl';

function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(path, { lazyEntries: true }, (error, file) => (error ? reject(error) : resolve(file))),
  );
}

/** Each entry's compressed size as the zip's central directory gives it (yauzl), in archive order. */
export async function readZipCompressedSizes(path: string): Promise<Map<string, number>> {
  const zip = await openZip(path);
  const sizes = new Map<string, number>();
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', resolve);
      zip.on('entry', (entry: yauzl.Entry) => {
        sizes.set(entry.fileName, entry.compressedSize);
        zip.readEntry();
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  return sizes;
}

/** Reads every entry of a zip file with an independent reader (yauzl), in archive order. */
export async function readZip(path: string): Promise<Map<string, Buffer>> {
  const zip = await openZip(path);
  const entries = new Map<string, Buffer>();
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', resolve);
      zip.on('entry', (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (error, stream) => {
          if (error) return reject(error);
          const chunks: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.on('error', reject);
          stream.on('end', () => {
            entries.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  return entries;
}
