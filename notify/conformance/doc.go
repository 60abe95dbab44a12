// Package conformance holds tests only: they send every message kind in
// every locale through the SendGrid and Twilio notifiers to Stoplight Prism
// serving the providers' own OpenAPI descriptions, and check that Prism
// accepts the requests and that a request Prism refuses ends in
// notify.ErrRejected.
//
// What the tests need:
//
//   - The specs sendgrid-v3.json and twilio-api-v2010.json, found at
//     ../shared/vendor-specs from the project root, or in the directory
//     named by VENDOR_SPECS_DIR. Without them the tests skip.
//   - Prism 5, found through PRISM_BIN or as prism on PATH. Without it the
//     tests skip, except when CI=true, where they fail.
//
// Install Prism outside the project and run the tests with it:
//
//	npm install --prefix /root/.cache/dunning-ci/prism @stoplight/prism-cli@5
//	CI=true PRISM_BIN=/root/.cache/dunning-ci/prism/node_modules/.bin/prism go test ./notify/...
//
// Each test starts its own Prism (prism mock -h 127.0.0.1 -p PORT --errors
// SPEC) on a free port, waits up to a minute for it to answer (it usually
// takes about five seconds to load a spec) and stops its process group when
// done.
//
// Between a notifier and Prism sits a small recording proxy. It keeps each
// request and Prism's verdict (the sl-violations header), so the tests can
// check the custom args, categories and form fields Prism validated. For
// SendGrid it also strips the /v3 prefix: the spec's paths are relative to
// its server URL http://api.sendgrid.com/v3, but Prism matches request
// paths against the paths as written (/mail/send) and answers
// POST /v3/mail/send with 404 NO_PATH_MATCHED. The notifier is pointed at
// the proxy as its base URL (http://127.0.0.1:PORT) and sends to
// /v3/mail/send exactly as it does in production.
//
// Where the specs differ from the live APIs, the tests follow the live APIs:
//
//   - sendgrid-v3.json types the message-level custom_args as a string;
//     SendGrid takes an object. The notifier sends custom args on the
//     personalization, where the spec has them as an object.
//   - sendgrid-v3.json requires subject and content even with a template_id,
//     which SendGrid does not; dynamic-template sends are covered by the
//     sendgrid package's unit tests only.
//   - twilio-api-v2010.json requires only To, and Prism does not check its
//     phone-number format, so a malformed number or a missing Body passes
//     Prism (Twilio answers 21211 and 21602). The refused requests here drop
//     To or the credentials on the way to Prism instead; the mapping of
//     Twilio's own error codes is covered by the twilio package's unit tests.
package conformance
