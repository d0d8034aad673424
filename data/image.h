// data/image.h - decoding JPEG and PNG files into 8-bit RGB images.
// defines: et_image, et_image_format, et_image_opts, ET_IMAGE_DEFAULT_MAX_PIXELS,
//          et_image_sniff, et_image_format_name, et_image_decode_file,
//          et_image_decode_memory, et_image_alloc, et_image_free
//
// Contract
// - An et_image is 8-bit RGB, row-major HWC: pixel (y, x) channel c is
//   data[(y * width + x) * 3 + c]. data is malloc'd and owned by the image; release it with
//   et_image_free (which also zeroes the struct; NULL-safe, and safe on a zeroed image).
// - The decoders reproduce what LLaVA trained on, Image.open(path).convert("RGB") with
//   Pillow 11:
//   JPEG (libjpeg-turbo; baseline, progressive, arithmetic): islow DCT with fancy upsampling
//     (libjpeg's defaults, as Pillow); greyscale is replicated to R=G=B; 4-component
//     (CMYK, or YCCK which libjpeg turns into CMYK) is taken as Adobe-inverted CMYK whether
//     or not an Adobe marker is present ("assume adobe conventions", as Pillow) and
//     converted with Pillow's formula R = 255-K - (C*(255-K))/255 (rounded the way Pillow's
//     MULDIV255 does). EXIF orientation is NOT applied (Pillow's convert does not either).
//   PNG (libpng; every colour type, bit depth and interlace): palettes are looked up,
//     1/2/4-bit grey scaled to 0..255, alpha (an alpha channel or tRNS) discarded without
//     compositing, 16-bit RGB(A) and grey+alpha keep the high byte; 16-bit grey WITHOUT
//     alpha is clipped to min(v, 255) because that is what Pillow's I;16 -> RGB conversion
//     does. Gamma, sRGB and ICC chunks are ignored, as in Pillow. Nothing after the image
//     data is read (a missing IEND is tolerated, as in Pillow).
// - The format is sniffed from the magic bytes, never from the file name. GIF, BMP, WebP,
//   TIFF and the rest are rejected with ET_ERR_UNSUPPORTED naming the detected format.
// - Width * height is checked against opts->max_pixels as soon as the header is read,
//   before the pixel buffer (or libjpeg's coefficient buffers) are allocated.
// - Every failure returns an et_status whose message starts with the file name (the path,
//   or the name given to et_image_decode_memory) and says what is wrong:
//   missing/unreadable file (ET_ERR_MISSING / ET_ERR_IO), empty file or corrupt or
//   truncated data (ET_ERR_FORMAT), unknown or unsupported format or colour space
//   (ET_ERR_UNSUPPORTED), too many pixels (ET_ERR_NOMEM). On failure *out is zeroed.
// - Truncation: a JPEG whose data ends early is an error (libjpeg only warns, "Premature
//   end of JPEG file", and pads with grey; we turn that warning into an error, as Pillow
//   raises "image file is truncated"). A damaged compressed scan is an error too: libjpeg's
//   corrupt-data warnings (bad Huffman or arithmetic code, premature end of a data segment,
//   a lost restart marker, invalid SOS parameters, an inconsistent progression) would
//   decode to garbage rows, where Pillow raises "broken data stream" and LLaVA skips the
//   file; the message names the file and libjpeg's warning. Harmless warnings (N extraneous
//   bytes before a marker, a bad ICC marker, an unknown JFIF revision) are tolerated, as
//   Pillow tolerates them. A PNG whose image data ends early, or with a bad CRC in a
//   critical chunk, is an error.
// - Thread-safe: no global state (libjpeg/libpng errors longjmp to per-call buffers).
#ifndef ET_IMAGE_H
#define ET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/status.h"

typedef struct et_image {
    int width, height;
    uint8_t *data;  // height * width * 3 bytes, RGB HWC, owned
} et_image;

typedef enum {
    ET_IMAGE_UNKNOWN = 0,
    ET_IMAGE_JPEG,
    ET_IMAGE_PNG,
    // recognised only to say what they are in the error message
    ET_IMAGE_GIF,
    ET_IMAGE_BMP,
    ET_IMAGE_WEBP,
    ET_IMAGE_TIFF,
    ET_IMAGE_HEIF,
} et_image_format;

#define ET_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)64 * 1024 * 1024)

typedef struct et_image_opts {
    int64_t max_pixels;  // width * height limit; <= 0 means ET_IMAGE_DEFAULT_MAX_PIXELS
} et_image_opts;

// The format of a byte buffer, from its magic bytes.
et_image_format et_image_sniff(const void *data, size_t size);
const char *et_image_format_name(et_image_format f);  // "JPEG", "PNG", "GIF", ...

// Decode the file at path (opts may be NULL for the defaults).
et_status et_image_decode_file(const char *path, const et_image_opts *opts, et_image *out);
// Decode size bytes at data; name is used in error messages (e.g. the source file).
et_status et_image_decode_memory(const void *data, size_t size, const char *name,
                                 const et_image_opts *opts, et_image *out);

// An uninitialised width x height image (malloc); ET_ERR_NOMEM when out of memory.
et_status et_image_alloc(int width, int height, et_image *out);
void et_image_free(et_image *img);

#endif
