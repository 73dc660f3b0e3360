/*
 * Differential Diffusion: paint canvas for the grayscale "change map".
 *
 * Contract with the Python side (scripts/ + differential/webui):
 *   #script_differential_diffusion_paint            gr.HTML wrapper; the UI is built inside its
 *                                                   ".dd-paint-root" div (or the wrapper itself).
 *   #script_differential_diffusion_paint_data textarea
 *                                                   hidden gr.Textbox; receives the map as a PNG
 *                                                   data URL after each stroke (pointerup), Fill
 *                                                   and Clear. "" = the user has painted nothing.
 *
 * The map is grayscale (R=G=B, opaque): 255 = full change, 0 = keep. Its pixel size is the
 * natural size of the current img2img init image (512x512 when there is none); when that
 * size changes the painting is rescaled. Model: a uniform grey base layer (initially black)
 * plus a transparent stroke layer; the map is the stroke layer composited over the base.
 * Brush paints strokes, Eraser removes strokes (revealing the base), Fill sets the base to
 * the brush value and clears the strokes, Clear resets everything to black.
 *
 * Toolbar ids: dd-paint-value (0..100 % grey), dd-paint-size (1..512 map px, diameter),
 * dd-paint-softness (0..100 % of the radius), dd-paint-brush, dd-paint-eraser,
 * dd-paint-fill, dd-paint-clear. The displayed map canvas has class "dd-paint-canvas".
 *
 * Hotkeys follow A1111's canvas-zoom-and-pan settings (window.opts.canvas_hotkey_*) and only
 * act while the pointer is over the canvas: zoom modifier + wheel = zoom around the cursor,
 * adjust modifier + wheel = brush size, hold the move key = pan, reset key = reset view,
 * shrink/grow keys = brush size.
 *
 * Debug/test hook: window.differentialDiffusionPaint = {root, size(), exportPNG()}.
 */
(function() {
    "use strict";

    const WRAPPER_ID = "script_differential_diffusion_paint";
    const DATA_SELECTOR = "#script_differential_diffusion_paint_data textarea";
    // The init images of the img2img sub-tabs, on both hosts: A1111's gr.Image shows an <img> once
    // an image is uploaded; Forge's ForgeCanvas blocks (every sub-tab but Inpaint upload, which stays
    // a gr.Image) always hold <img class="forge-image">, with an empty src until then (findInitImage
    // skips images that have not loaded).
    const IMAGE_SELECTORS = ["#img2img_image img", "#img2img_sketch img", "#img2maskimg img",
        "#inpaint_sketch img", "#img_inpaint_base img"];
    const NON_TEXT_INPUTS = ["range", "checkbox", "radio", "button", "submit", "reset", "color", "file"];
    const DEFAULT_SIZE = 512;
    const MAX_BRUSH = 512;
    // A1111 setting name: [default, name in the canvas_disabled_functions setting].
    const HOTKEYS = {
        canvas_hotkey_zoom: ["Alt", "Zoom"],
        canvas_hotkey_adjust: ["Ctrl", "Adjust brush size"],
        canvas_hotkey_move: ["KeyF", "Moving canvas"],
        canvas_hotkey_reset: ["KeyR", "Reset Zoom"],
        canvas_hotkey_shrink_brush: ["KeyQ", "Hotkey shrink brush"],
        canvas_hotkey_grow_brush: ["KeyW", "Hotkey enlarge brush"],
    };
    const STYLE = `
.dd-paint-toolbar { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin-bottom: 6px; }
.dd-paint-toolbar label { display: flex; gap: 6px; align-items: center; font-size: 0.9em; }
.dd-paint-toolbar input[type=range] { width: 110px; }
.dd-paint-toolbar button { padding: 2px 10px; border-radius: 6px; cursor: pointer;
    border: 1px solid var(--border-color-primary, #888);
    background: var(--button-secondary-background-fill, #eee); color: var(--body-text-color, #222); }
.dd-paint-toolbar button.dd-active { border-color: var(--color-accent, #f97316);
    box-shadow: 0 0 0 1px var(--color-accent, #f97316) inset; }
.dd-paint-viewport { position: relative; overflow: hidden; width: 100%; background: #222; }
.dd-paint-stage { position: relative; transform-origin: 0 0; }
.dd-paint-stage img { position: absolute; inset: 0; width: 100%; height: 100%; margin: 0;
    max-width: none; pointer-events: none; user-select: none; }
.dd-paint-canvas { position: relative; display: block; width: 100%; height: auto; margin: 0;
    opacity: 0.6; touch-action: none; cursor: crosshair; }
.dd-paint-cursor { position: absolute; border-radius: 50%; pointer-events: none; display: none;
    border: 1px solid #fff; box-shadow: 0 0 0 1px #000; box-sizing: border-box; }
.dd-paint-hint { font-size: 0.8em; opacity: 0.7; margin-top: 4px; }`;

    let painter = null; // state of the one live canvas (rebuilt if gradio replaces the root)
    let keysInstalled = false;

    // ---------- helpers ----------

    function app() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function clamp(v, lo, hi) {
        return Math.min(hi, Math.max(lo, v));
    }

    function grey(v, alpha = 1) {
        return `rgba(${v},${v},${v},${alpha})`;
    }

    function el(tag, props = {}, parent = null) {
        const node = Object.assign(document.createElement(tag), props);
        if (parent) parent.appendChild(node);
        return node;
    }

    function makeCanvas(width, height) {
        return el("canvas", {width, height});
    }

    // Normalized hotkey ("Alt"/"Ctrl"/"Shift" or a KeyboardEvent.code), null when disabled.
    function hotkey(name) {
        const opts = window.opts || {};
        const [fallback, functionName] = HOTKEYS[name];
        const disabled = opts.canvas_disabled_functions;
        if (Array.isArray(disabled) && disabled.includes(functionName)) return null;
        const value = typeof opts[name] === "string" && opts[name] ? opts[name] : fallback;
        return value.length === 1 ? "Key" + value.toUpperCase() : value;
    }

    function hotkeyLabel(name) {
        return (hotkey(name) || "(off)").replace(/^Key/, "");
    }

    function modifierHeld(e, name) {
        const key = hotkey(name);
        return (key === "Ctrl" && e.ctrlKey) || (key === "Alt" && e.altKey) || (key === "Shift" && e.shiftKey);
    }

    // Text entry has focus (sliders, checkboxes and buttons do not count).
    function isTyping(e) {
        const t = e.target;
        if (!t) return false;
        if (t.nodeName === "INPUT") return !NON_TEXT_INPUTS.includes(t.type);
        return t.nodeName === "TEXTAREA" || t.nodeName === "SELECT" || t.isContentEditable;
    }

    // ---------- init image ----------

    function findInitImage() {
        const root = app();
        const loaded = IMAGE_SELECTORS.map(s => root.querySelector(s))
            .filter(img => img && img.complete && img.naturalWidth > 0);
        // Prefer the image of the visible img2img tab, else the first one in selector order.
        return loaded.find(img => img.offsetParent !== null) || loaded[0] || null;
    }

    function watchImageLoads() {
        for (const s of IMAGE_SELECTORS) {
            const img = app().querySelector(s);
            if (img && !img.dataset.ddPaintWatched) {
                img.dataset.ddPaintWatched = "1";
                img.addEventListener("load", syncImage);
            }
        }
    }

    function syncImage() {
        if (!painter) return;
        const img = findInitImage();
        const w = img ? img.naturalWidth : DEFAULT_SIZE;
        const h = img ? img.naturalHeight : DEFAULT_SIZE;
        const src = img ? img.src : "";
        if (painter.bg.getAttribute("src") !== src) {
            if (src) painter.bg.src = src; else painter.bg.removeAttribute("src");
            painter.bg.style.display = src ? "" : "none";
        }
        if (w !== painter.view.width || h !== painter.view.height) resizeMap(w, h);
    }

    function resizeMap(w, h) {
        const old = painter.strokes;
        painter.strokes = makeCanvas(w, h);
        painter.strokes.getContext("2d").drawImage(old, 0, 0, w, h);
        painter.view.width = w;
        painter.view.height = h;
        render();
        if (painter.dirty) exportToTextbox();
    }

    // ---------- painting model ----------

    function render() {
        const ctx = painter.view.getContext("2d");
        ctx.globalCompositeOperation = "source-over";
        ctx.fillStyle = grey(painter.base);
        ctx.fillRect(0, 0, painter.view.width, painter.view.height);
        ctx.drawImage(painter.strokes, 0, 0);
    }

    function scheduleRender() {
        if (painter.frame) return;
        const p = painter;
        p.frame = requestAnimationFrame(() => {
            p.frame = 0;
            if (p === painter) render();
        });
    }

    function brushValue() {
        return Math.round(Number(painter.inputs.value.value) * 255 / 100);
    }

    function brushSize() {
        return Number(painter.inputs.size.value);
    }

    function dab(x, y) {
        const ctx = painter.strokes.getContext("2d");
        const r = Math.max(0.5, brushSize() / 2);
        const soft = Number(painter.inputs.softness.value) / 100;
        const v = brushValue();
        ctx.globalCompositeOperation = painter.tool === "eraser" ? "destination-out" : "source-over";
        if (soft <= 0) {
            ctx.fillStyle = grey(v);
        } else {
            const g = ctx.createRadialGradient(x, y, 0, x, y, r);
            g.addColorStop(0, grey(v));
            g.addColorStop(1 - soft, grey(v));
            g.addColorStop(1, grey(v, 0));
            ctx.fillStyle = g;
        }
        ctx.beginPath();
        ctx.arc(x, y, r, 0, Math.PI * 2);
        ctx.fill();
    }

    // Stamp dabs every ~size/8 map pixels along the segment from the last point to (x, y).
    function strokeTo(x, y) {
        const s = painter.stroke;
        const dx = x - s.x, dy = y - s.y;
        const dist = Math.hypot(dx, dy);
        const step = Math.max(1, brushSize() / 8);
        let d = step - s.travelled;
        for (; d <= dist; d += step) dab(s.x + dx * d / dist, s.y + dy * d / dist);
        s.travelled = dist - (d - step);
        s.x = x;
        s.y = y;
    }

    function setBase(value) {
        painter.base = value;
        painter.strokes.getContext("2d").clearRect(0, 0, painter.strokes.width, painter.strokes.height);
        render();
        exportToTextbox();
    }

    function exportPNG() {
        if (!painter) return "";
        render();
        return painter.view.toDataURL("image/png");
    }

    function exportToTextbox() {
        const ta = app().querySelector(DATA_SELECTOR);
        painter.dirty = true;
        if (!ta) return;
        ta.value = exportPNG();
        if (typeof updateInput === "function") updateInput(ta);
        else ta.dispatchEvent(new Event("input", {bubbles: true}));
    }

    // ---------- view: zoom, pan, cursor ----------

    function mapPoint(e) {
        const rect = painter.view.getBoundingClientRect();
        return {
            x: (e.clientX - rect.left) * painter.view.width / rect.width,
            y: (e.clientY - rect.top) * painter.view.height / rect.height,
        };
    }

    function applyTransform() {
        painter.stage.style.transform = `translate(${painter.panX}px, ${painter.panY}px) scale(${painter.zoom})`;
    }

    function zoomAt(e, factor) {
        const vp = painter.viewport.getBoundingClientRect();
        const mx = e.clientX - vp.left, my = e.clientY - vp.top;
        const zoom = clamp(painter.zoom * factor, 0.25, 16);
        painter.panX = mx - (mx - painter.panX) * zoom / painter.zoom;
        painter.panY = my - (my - painter.panY) * zoom / painter.zoom;
        painter.zoom = zoom;
        applyTransform();
    }

    function resetView() {
        Object.assign(painter, {zoom: 1, panX: 0, panY: 0});
        applyTransform();
    }

    function updateCursor(e) {
        const c = painter.cursor;
        if (!e || painter.panning) {
            c.style.display = "none";
            return;
        }
        const p = mapPoint(e);
        const scale = painter.view.offsetWidth / painter.view.width; // layout px per map px
        const d = brushSize() * scale;
        Object.assign(c.style, {
            display: "block", width: d + "px", height: d + "px",
            left: (p.x * scale - d / 2) + "px", top: (p.y * scale - d / 2) + "px",
        });
    }

    function changeBrushSize(grow) {
        const input = painter.inputs.size;
        const cur = Number(input.value);
        const next = grow ? Math.max(cur + 1, Math.round(cur * 1.15)) : Math.min(cur - 1, Math.round(cur / 1.15));
        input.value = clamp(next, 1, MAX_BRUSH);
        input.dispatchEvent(new Event("input"));
    }

    // ---------- event handlers ----------

    function onPointerDown(e) {
        if (e.button !== 0 || painter.panning) return;
        e.preventDefault();
        painter.view.setPointerCapture(e.pointerId);
        const p = mapPoint(e);
        painter.stroke = {id: e.pointerId, x: p.x, y: p.y, travelled: 0};
        dab(p.x, p.y);
        scheduleRender();
    }

    function onPointerMove(e) {
        if (painter.panning) {
            painter.panX += e.movementX;
            painter.panY += e.movementY;
            applyTransform();
            return;
        }
        painter.lastMove = e;
        updateCursor(e);
        if (!painter.stroke || painter.stroke.id !== e.pointerId) return;
        const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
        for (const ev of events.length ? events : [e]) {
            const p = mapPoint(ev);
            strokeTo(p.x, p.y);
        }
        scheduleRender();
    }

    function onPointerUp(e) {
        if (!painter.stroke || painter.stroke.id !== e.pointerId) return;
        painter.stroke = null;
        exportToTextbox();
    }

    function onWheel(e) {
        const up = (e.deltaY || e.deltaX) < 0; // browsers turn Shift+wheel into deltaX
        if (modifierHeld(e, "canvas_hotkey_zoom")) {
            e.preventDefault();
            zoomAt(e, up ? 1.2 : 1 / 1.2);
        } else if (modifierHeld(e, "canvas_hotkey_adjust")) {
            e.preventDefault();
            painter.lastMove = e;
            changeBrushSize(up);
        } else {
            return;
        }
        if (e.altKey) painter.usedAlt = true;
    }

    function onKeyDown(e) {
        if (!painter || !painter.hover || isTyping(e) || e.ctrlKey || e.metaKey) return;
        const actions = {
            [hotkey("canvas_hotkey_reset")]: resetView,
            [hotkey("canvas_hotkey_shrink_brush")]: () => changeBrushSize(false),
            [hotkey("canvas_hotkey_grow_brush")]: () => changeBrushSize(true),
            [hotkey("canvas_hotkey_move")]: () => {
                painter.panning = true;
                updateCursor(null);
            },
        };
        const action = actions[e.code];
        if (action) {
            e.preventDefault();
            action();
        }
    }

    function onKeyUp(e) {
        if (!painter) return;
        if (e.code === hotkey("canvas_hotkey_move")) painter.panning = false;
        if (e.key === "Alt" && painter.usedAlt) {
            e.preventDefault(); // keep Firefox from opening its menu after Alt+wheel
            painter.usedAlt = false;
        }
    }

    function installKeyHandlers() {
        if (keysInstalled) return;
        keysInstalled = true;
        document.addEventListener("keydown", onKeyDown);
        document.addEventListener("keyup", onKeyUp);
        window.addEventListener("blur", () => {
            if (painter) painter.panning = false;
        });
    }

    // ---------- UI construction ----------

    function addSlider(bar, id, label, min, max, value) {
        const wrap = el("label", {}, bar);
        el("span", {textContent: label}, wrap);
        const input = el("input", {id, type: "range", min, max, step: 1, value}, wrap);
        const out = el("span", {className: "dd-paint-readout", textContent: value}, wrap);
        input.addEventListener("input", () => {
            out.textContent = input.value;
        });
        return input;
    }

    function addButton(bar, id, label, onClick) {
        const button = el("button", {id, type: "button", textContent: label, className: "dd-paint-tool"}, bar);
        button.addEventListener("click", onClick);
        return button;
    }

    // window.opts may arrive after the build, so the hint is refreshed on every UI update.
    function updateHint() {
        const k = hotkeyLabel;
        painter.hint.textContent = "White = change, black = keep. Over the canvas: " +
            `${k("canvas_hotkey_zoom")}+wheel zoom, ${k("canvas_hotkey_adjust")}+wheel or ` +
            `${k("canvas_hotkey_shrink_brush")}/${k("canvas_hotkey_grow_brush")} brush size, ` +
            `hold ${k("canvas_hotkey_move")} pan, ${k("canvas_hotkey_reset")} reset view.`;
    }

    function setTool(tool) {
        painter.tool = tool;
        painter.buttons.brush.classList.toggle("dd-active", tool === "brush");
        painter.buttons.eraser.classList.toggle("dd-active", tool === "eraser");
    }

    function injectStyle() {
        if (document.getElementById("dd-paint-style")) return;
        el("style", {id: "dd-paint-style", textContent: STYLE}, document.head);
    }

    function build(root) {
        injectStyle();
        root.dataset.ddPaintBuilt = "1";
        root.innerHTML = "";
        const bar = el("div", {className: "dd-paint-toolbar"}, root);
        const viewport = el("div", {className: "dd-paint-viewport"}, root);
        const stage = el("div", {className: "dd-paint-stage"}, viewport);
        const bg = el("img", {className: "dd-paint-background", alt: "", draggable: false}, stage);
        bg.style.display = "none";
        const view = el("canvas", {className: "dd-paint-canvas", width: DEFAULT_SIZE, height: DEFAULT_SIZE}, stage);
        const cursor = el("div", {className: "dd-paint-cursor"}, stage);
        painter = {
            root, viewport, stage, bg, view, cursor,
            strokes: makeCanvas(DEFAULT_SIZE, DEFAULT_SIZE),
            base: 0, tool: "brush", zoom: 1, panX: 0, panY: 0,
            stroke: null, lastMove: null, panning: false, hover: false, dirty: false, frame: 0, usedAlt: false,
            inputs: {
                value: addSlider(bar, "dd-paint-value", "Value %", 0, 100, 100),
                size: addSlider(bar, "dd-paint-size", "Size", 1, MAX_BRUSH, 48),
                softness: addSlider(bar, "dd-paint-softness", "Softness %", 0, 100, 50),
            },
        };
        painter.buttons = {
            brush: addButton(bar, "dd-paint-brush", "Brush", () => setTool("brush")),
            eraser: addButton(bar, "dd-paint-eraser", "Eraser", () => setTool("eraser")),
        };
        addButton(bar, "dd-paint-fill", "Fill", () => setBase(brushValue()));
        addButton(bar, "dd-paint-clear", "Clear", () => setBase(0));
        painter.hint = el("div", {className: "dd-paint-hint"}, root);
        setTool("brush");

        view.addEventListener("pointerdown", onPointerDown);
        viewport.addEventListener("pointermove", onPointerMove);
        view.addEventListener("pointerup", onPointerUp);
        view.addEventListener("pointercancel", onPointerUp);
        view.addEventListener("contextmenu", e => e.preventDefault());
        viewport.addEventListener("wheel", onWheel, {passive: false});
        viewport.addEventListener("pointerenter", () => {
            painter.hover = true;
        });
        viewport.addEventListener("pointerleave", () => {
            painter.hover = false;
            updateCursor(null);
        });
        painter.inputs.size.addEventListener("input", () => updateCursor(painter.hover ? painter.lastMove : null));
        render();
    }

    function setup() {
        const wrapper = app().querySelector("#" + WRAPPER_ID);
        if (!wrapper) return;
        const root = wrapper.querySelector(".dd-paint-root") || wrapper;
        if (!root.dataset.ddPaintBuilt || !painter || painter.root !== root) build(root);
        installKeyHandlers();
        updateHint();
        watchImageLoads();
        syncImage();
    }

    window.differentialDiffusionPaint = {
        get root() {
            return painter ? painter.root : null;
        },
        size() {
            return painter ? [painter.view.width, painter.view.height] : [0, 0];
        },
        exportPNG,
    };

    if (typeof onUiLoaded === "function") onUiLoaded(setup);
    if (typeof onAfterUiUpdate === "function") onAfterUiUpdate(setup);
})();
