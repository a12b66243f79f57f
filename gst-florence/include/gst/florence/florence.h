/* florencecaption: the names and fields an application reads and writes.
 * (gst-florence/src/protocol/ is the Rust side of the same list; a test
 * checks that both name the same fields.)
 *
 * Header only: the metas are GstCustomMeta (GStreamer >= 1.20), so nothing
 * of the plugin is linked; these names are its interface.
 *
 *   #include <gst/florence/florence.h>
 *   GstCustomMeta *m = gst_buffer_get_custom_meta (buf, FLORENCE_CAPTION_META);
 *   const GstStructure *s = gst_custom_meta_get_structure (m);
 *   const gchar *text = gst_structure_get_string (s, FLORENCE_FIELD_TEXT);
 *
 * Element: florencecaption (plugin "florence"), an in-place video filter.
 * Request pad text_src: each result as text/x-raw, format=utf8 at the
 * analysed frame's time.
 */
#ifndef GST_FLORENCE_H
#define GST_FLORENCE_H

/* Result meta (GstCustomMeta), on buffers leaving florencecaption. One per
 * buffer: the first instance's result at the top level, and every instance's
 * under FLORENCE_FIELD_RESULTS, a GstStructure with one field per element
 * name holding that instance's result (the same fields). */
#define FLORENCE_CAPTION_META "FlorenceCaptionMeta"
/* Element message posted for each new result (same fields, no "results"). */
#define FLORENCE_CAPTION_MESSAGE "florence-caption"

/* Result fields */
#define FLORENCE_FIELD_TASK "task"                   /* string: task token, e.g. "<CAPTION>" */
#define FLORENCE_FIELD_TEXT "text"                   /* string: the text, or the labels joined */
#define FLORENCE_FIELD_RESULT "result"               /* string: post-processed result, JSON */
#define FLORENCE_FIELD_INFERENCE_TIME_MS "inference-time-ms" /* double */
#define FLORENCE_FIELD_MODEL "model"                 /* string: the model directory's name */
#define FLORENCE_FIELD_FRAME_PTS "frame-pts"         /* guint64: PTS of the analysed frame (G_MAXUINT64: none) */
#define FLORENCE_FIELD_FRESH "fresh"                 /* boolean: first buffer to carry this result */
#define FLORENCE_FIELD_AGE_MS "age-ms"               /* double: time since the result was produced */
#define FLORENCE_FIELD_TOKEN_COUNT "token-count"     /* guint64 */
#define FLORENCE_FIELD_IMAGE_WIDTH "image-width"     /* guint: coordinates are in this frame size */
#define FLORENCE_FIELD_IMAGE_HEIGHT "image-height"   /* guint */
#define FLORENCE_FIELD_VISION_CACHED "vision-cached" /* boolean: the vision pass was reused */
#define FLORENCE_FIELD_REQUEST "request"             /* GstStructure "FlorenceRequest": what was asked */
#define FLORENCE_FIELD_ELEMENT "element"             /* string: the florencecaption instance's name */
#define FLORENCE_FIELD_RESULTS "results"             /* GstStructure: element name -> result (meta only) */
#define FLORENCE_FIELD_REQUEST_ID "request-id"       /* string: the request's id (per-buffer requests) */
#define FLORENCE_FIELD_ERROR "error"                 /* string: why a per-buffer request gave no result */
#define FLORENCE_FIELD_ERROR_KIND "error-kind"       /* string: one of the FLORENCE_ERROR_* */
#define FLORENCE_FIELD_QUEUE_WAIT_MS "queue-wait-ms" /* double: of inference-time-ms, queued behind other streams on a shared model */
#define FLORENCE_FIELD_DECODE_BATCH "decode-batch"   /* guint: most requests decoded together in one decoder run with this one (1: alone; 0: the Hailo split) */

#define FLORENCE_ERROR_INVALID_REQUEST "invalid-request"
#define FLORENCE_ERROR_INFERENCE_FAILED "inference-failed"
#define FLORENCE_ERROR_TIMED_OUT "timed-out"
#define FLORENCE_ERROR_CANCELLED "cancelled"
#define FLORENCE_ERROR_DEVICE_BUSY "device-busy"     /* another process holds the Hailo device: retry later */
#define FLORENCE_ERROR_DEVICE_ERROR "device-error"   /* the Hailo device failed; the next request reopens it */

/* Element message posted when an instance loads its model: instances with the
 * same model-dir and graph-changing properties share one loaded model in a
 * process (the same model-id). */
#define FLORENCE_MODEL_MESSAGE "florence-model"
#define FLORENCE_MODEL_DIR "model-dir"               /* string: the model-dir property */
#define FLORENCE_MODEL_ID "model-id"                 /* guint64: the loaded model, unique in the process */
#define FLORENCE_MODEL_USERS "users"                 /* guint: instances and workers using it now */
#define FLORENCE_MODEL_LOADED "loaded"               /* boolean: this instance loaded it (else shared it) */

/* Request meta (GstCustomMeta) an application puts on an input buffer
 * (mode=every-frame) to give it its own request; missing fields take the
 * element's properties. An unknown field or a wrongly typed value makes the
 * request invalid (FLORENCE_ERROR_INVALID_REQUEST). Numbers may be any GLib
 * integer type or an integral double. From bindings whose custom-meta
 * structure is a copy (PyGObject): the action signal
 * "add-request" (GstBuffer *buffer, GstStructure *request) -> GstBuffer *. */
#define FLORENCE_REQUEST_META "FlorenceRequestMeta"
#define FLORENCE_REQUEST_ID "id"                     /* string: echoed as request-id */
#define FLORENCE_REQUEST_TASK "task"                 /* string: "od", "<OD>", "vqa", ... */
#define FLORENCE_REQUEST_TEXT "text"                 /* string: the task's text input */
#define FLORENCE_REQUEST_REGION "region"             /* 4 numbers (array or list) or "x1,y1,x2,y2", pixels */
#define FLORENCE_REQUEST_MAX_NEW_TOKENS "max-new-tokens"
#define FLORENCE_REQUEST_MIN_NEW_TOKENS "min-new-tokens"
#define FLORENCE_REQUEST_NUM_BEAMS "num-beams"
#define FLORENCE_REQUEST_TEMPERATURE "temperature"   /* number, >= 0; 0: deterministic */
#define FLORENCE_REQUEST_SEED "seed"
#define FLORENCE_REQUEST_DEADLINE_US "deadline-us"   /* g_get_monotonic_time() value: stop there (timed-out) */

/* Region metas: each box, quad box or polygon group of a result leaves
 * florencecaption as a GstVideoRegionOfInterestMeta (roi_type: the label, or
 * the task token when the region has none; the rectangle in the buffer's
 * pixels, scaled by GStreamer's scalers; id: unique on the buffer) whose params
 * hold one structure of this name. Outline points are fractions of the
 * meta's rectangle: x = rect.x + px * rect.w, y = rect.y + py * rect.h. */
#define FLORENCE_REGION_PARAMS "florence/region"
#define FLORENCE_REGION_TASK "task"                  /* string: task token, e.g. "<OD>" */
#define FLORENCE_REGION_LABEL "label"                /* string: label, phrase or OCR text ("": none) */
#define FLORENCE_REGION_ELEMENT "element"            /* string: the florencecaption instance's name */
#define FLORENCE_REGION_SHAPE "shape"                /* string: "box", "quad" or "polygon" */
#define FLORENCE_REGION_INDEX "index"                /* guint: position in the result's bboxes, quad_boxes or polygons */
#define FLORENCE_REGION_POINTS "points"              /* GstValueArray of double: x, y, ... of every ring (quads, polygons) */
#define FLORENCE_REGION_POINT_COUNTS "point-counts"  /* GstValueArray of guint: points in each ring */

#endif /* GST_FLORENCE_H */
