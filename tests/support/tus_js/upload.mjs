// Upload one file with tus-js-client, as a browser or Node app would; used by tests/e2e/test_tus_uploads.py.
//
//   node upload.mjs '{"endpoint": ..., "file": ..., "chunkSize": ..., "headers": {...}, "metadata": {...},
//                     "uploadUrl": null, "parallel": false}'
//
// Prints one JSON line: {"url": <upload URL>, "jobId": <Pagemill-Job-Id of the last PATCH>}; exits 1 with
// {"error": ...} when the upload fails.
import fs from "node:fs";
import * as tus from "tus-js-client";

const args = JSON.parse(process.argv[2]);
const size = fs.statSync(args.file).size;
let jobId = null;

const upload = new tus.Upload(fs.createReadStream(args.file), {
  endpoint: args.endpoint,
  uploadUrl: args.uploadUrl || null,
  uploadSize: size,
  chunkSize: args.chunkSize,
  headers: args.headers || {},
  metadata: args.metadata || {},
  retryDelays: [100, 500, 1000, 2000],
  onAfterResponse(_req, res) {
    const header = res.getHeader("Pagemill-Job-Id");
    if (header) jobId = header;
  },
  onError(error) {
    process.stdout.write(JSON.stringify({ error: String(error) }) + "\n");
    process.exit(1);
  },
  onSuccess() {
    process.stdout.write(JSON.stringify({ url: upload.url, jobId }) + "\n");
  },
});
upload.start();
