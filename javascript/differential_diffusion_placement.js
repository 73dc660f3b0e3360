/*
 * Differential Diffusion: place a gradient by dragging on the strength preview.
 *
 * With the Linear gradient source, press where the change should start (the keep side) and
 * release where it should be full: Angle, Start and End are set. With the Radial gradient
 * source, press at the centre and release at the outer radius (a click only moves the centre):
 * Centre x, Centre y and Outer radius are set (Inner radius is halved if it would exceed it).
 * The values go into the panel's sliders (their number inputs, with an "input" event), so the
 * preview, the job and the infotext follow exactly as if they had been typed.
 *
 * Geometry matches differential/generators.py: positions are fractions of the image, the
 * linear direction is taken in those fractional coordinates, radii are fractions of the shorter
 * side. The preview image is the init image with a legend strip LEGEND_HEIGHT pixels high below
 * it (differential/preview.py, strength_preview's legend_height).
 */
(function() {
    "use strict";

    const PREVIEW_SELECTOR = "#script_differential_diffusion_preview img";
    const SOURCE_SELECTOR = "#script_differential_diffusion_source";
    const LEGEND_HEIGHT = 28;
    const SOURCES = {"Linear gradient": "linear", "Radial gradient": "radial", linear: "linear", radial: "radial"};
    let drag = null;

    function app() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function clamp(value, low, high) {
        return Math.min(high, Math.max(low, value));
    }

    function round(value, digits) {
        const scale = Math.pow(10, digits);
        return Math.round(value * scale) / scale;
    }

    /** "linear", "radial" or null: the panel's selected map source, if it is a gradient. */
    function activeGradient() {
        const group = app().querySelector(SOURCE_SELECTOR);
        if (!group) return null;
        const checked = group.querySelector("input[type=radio]:checked");
        if (checked && SOURCES[checked.value]) return SOURCES[checked.value];
        const label = checked && checked.closest("label");
        return label ? SOURCES[label.innerText.trim()] || null : null;
    }

    /** Pointer position as fractions of the init image shown in the preview (legend excluded). */
    function imageFraction(img, event) {
        const rect = img.getBoundingClientRect();
        const naturalWidth = img.naturalWidth;
        const naturalHeight = img.naturalHeight;
        let scaleX = rect.width / naturalWidth;
        let scaleY = rect.height / naturalHeight;
        let left = rect.left;
        let top = rect.top;
        if (getComputedStyle(img).objectFit === "contain") {
            scaleX = scaleY = Math.min(scaleX, scaleY);
            left += (rect.width - naturalWidth * scaleX) / 2;
            top += (rect.height - naturalHeight * scaleY) / 2;
        }
        const width = naturalWidth;
        const height = Math.max(1, naturalHeight - LEGEND_HEIGHT);
        return {
            u: clamp((event.clientX - left) / scaleX / width, 0, 1),
            v: clamp((event.clientY - top) / scaleY / height, 0, 1),
            width,
            height,
        };
    }

    function field(name) {
        return app().querySelector(`#script_differential_diffusion_${name} input[type=number]`);
    }

    function setField(name, value) {
        const input = field(name);
        if (!input) return;
        input.value = value;
        if (typeof updateInput === "function") updateInput(input);
        else input.dispatchEvent(new Event("input", {bubbles: true}));
    }

    function placeLinear(from, to) {
        const du = to.u - from.u;
        const dv = to.v - from.v;
        if (Math.hypot(du, dv) < 0.01) return;
        const angle = Math.round(Math.atan2(dv, du) * 180 / Math.PI);
        const dx = Math.cos(angle * Math.PI / 180);
        const dy = Math.sin(angle * Math.PI / 180);
        const corners = [0, dx, dy, dx + dy];
        const low = Math.min(...corners);
        const high = Math.max(...corners);
        const position = p => clamp((p.u * dx + p.v * dy - low) / (high - low), 0, 1);
        setField("gradient_angle", angle);
        setField("gradient_start", round(position(from), 2));
        setField("gradient_end", round(position(to), 2));
    }

    function placeRadial(from, to) {
        setField("radial_x", round(from.u, 2));
        setField("radial_y", round(from.v, 2));
        const side = Math.min(from.width, from.height);
        const radius = Math.hypot((to.u - from.u) * from.width, (to.v - from.v) * from.height) / side;
        if (radius < 0.01) return;
        const outer = round(clamp(radius, 0.01, 2), 2);
        setField("radial_outer", outer);
        const inner = field("radial_inner");
        if (inner && parseFloat(inner.value) >= outer) setField("radial_inner", round(outer / 2, 2));
    }

    function onPointerDown(event) {
        const img = event.target.closest && event.target.closest(PREVIEW_SELECTOR);
        const kind = img && event.button === 0 ? activeGradient() : null;
        if (!kind || !img.naturalWidth) return;
        event.preventDefault();
        drag = {img, kind, from: imageFraction(img, event)};
    }

    function onPointerUp(event) {
        if (!drag) return;
        const to = imageFraction(drag.img, event);
        if (drag.kind === "linear") placeLinear(drag.from, to);
        else placeRadial(drag.from, to);
        drag = null;
    }

    document.addEventListener("pointerdown", onPointerDown, true);
    document.addEventListener("pointerup", onPointerUp, true);
    document.addEventListener("dragstart", event => {
        if (event.target.closest && event.target.closest(PREVIEW_SELECTOR) && activeGradient()) event.preventDefault();
    }, true);
})();
