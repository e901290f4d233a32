// The slider's value beside it, as it moves. Everything else works without script.
document.addEventListener("DOMContentLoaded", () => {
  const slider = document.getElementById("p");
  const out = document.getElementById("p-out");
  if (slider && out) {
    slider.addEventListener("input", () => { out.textContent = slider.value; });
  }
});
