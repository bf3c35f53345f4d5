// Vitals, a sample SMART on FHIR app: the launch page (SMART App Launch 2.2,
// https://hl7.org/fhir/smart-app-launch/app-launch.html). Works for both launches:
//  - EHR launch: the EHR opens launch.html?iss=...&launch=...; the app asks for the `launch`
//    scope so that the server binds the launch context (patient) to the token.
//  - standalone launch: launch.html opened without `iss` uses this origin's /fhir and asks for
//    launch/patient (the server lets the user pick a patient), without `launch`.
// fhirclient then fetches .well-known/smart-configuration, makes a PKCE S256 challenge and
// redirects to the authorization endpoint; the server sends the user back to index.html.
"use strict";

(function () {
  const kClientId = "vitals";
  const kScopes = [
    "launch/patient",
    "openid",
    "fhirUser",
    "patient/Patient.rs",
    "patient/Observation.rs",
    "patient/Condition.rs",
    "patient/AllergyIntolerance.rs",
    "patient/MedicationRequest.rs",
    "offline_access",
  ];

  function showError(text) {
    const box = document.getElementById("error");
    box.textContent = text;
    box.hidden = false;
    document.getElementById("launch-status").textContent = "The app could not be launched.";
    document.getElementById("main").dataset.state = "error";
  }

  function describe(error) {
    const message = String((error && error.message) || error || "unknown error");
    if (!window.isSecureContext) {
      return "This app must be opened over HTTPS (or from localhost): the browser only offers " +
          "the cryptography that a secure sign-in needs on secure pages. (" + message + ")";
    }
    if (/smart-configuration|Failed to fetch|NetworkError|\b404\b/i.test(message)) {
      return "The health record server could not be reached or does not support SMART on " +
          "FHIR. Please try again later. (" + message + ")";
    }
    return "The app could not start signing you in: " + message;
  }

  function launch() {
    if (typeof FHIR === "undefined" || !FHIR.oauth2) {
      showError("The app's SMART client library did not load. Please reload the page.");
      return;
    }
    const params = new URLSearchParams(window.location.search);
    const ehrLaunch = params.has("launch");
    const options = {
      clientId: kClientId,
      scope: (ehrLaunch ? ["launch"] : []).concat(kScopes).join(" "),
      redirectUri: "index.html",
      pkceMode: "required",
      completeInTarget: true,
    };
    if (!params.get("iss") && !params.get("fhirServiceUrl")) {
      options.iss = new URL("/fhir", window.location.href).href;
    }
    FHIR.oauth2.authorize(options).catch(function (error) {
      showError(describe(error));
    });
  }

  launch();
})();
