//! The one place that reaches past `ffmpeg-next`'s safe API: giving a decoder its
//! codec configuration (`extradata`), and reading an encoder's (`extradata`) and its
//! priming (`initial_padding`), which the binding has no accessors for.

use ffmpeg_next::codec::Context;

/// libavcodec reads up to this many bytes past the end of any input buffer
/// (`AV_INPUT_BUFFER_PADDING_SIZE` in FFmpeg 5 and later); they must be zero.
const PADDING: usize = 64;

/// Copies `config` into the context's `extradata` (zero-padded, allocated with
/// `av_mallocz` so that `avcodec_free_context` frees it). Call before opening.
pub(crate) fn set_extradata(context: &mut Context, config: &[u8]) {
    let Ok(size) = i32::try_from(config.len()) else {
        return;
    };
    if config.is_empty() {
        return;
    }
    // SAFETY: the context is a valid, not yet opened AVCodecContext owned by `context`;
    // the buffer is allocated by libavutil with room for the padding, filled within its
    // bounds, and handed to the context, which frees it with its own `av_free`. A
    // previous extradata (none: contexts here are new) would be freed first.
    #[allow(unsafe_code)]
    unsafe {
        let ctx = context.as_mut_ptr();
        let buf = ffmpeg_next::ffi::av_mallocz(config.len() + PADDING).cast::<u8>();
        if buf.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(config.as_ptr(), buf, config.len());
        ffmpeg_next::ffi::av_freep(std::ptr::addr_of_mut!((*ctx).extradata).cast());
        (*ctx).extradata = buf;
        (*ctx).extradata_size = size;
    }
}

/// A copy of an opened encoder's `extradata` (for AAC: the AudioSpecificConfig).
pub(crate) fn extradata(context: &Context) -> Vec<u8> {
    // SAFETY: the context is a valid AVCodecContext owned by `context`; `extradata` is
    // null or points at `extradata_size` bytes owned by it, alive while it is borrowed.
    #[allow(unsafe_code)]
    unsafe {
        let ctx = context.as_ptr();
        let size = usize::try_from((*ctx).extradata_size).unwrap_or(0);
        if (*ctx).extradata.is_null() || size == 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*ctx).extradata, size).to_vec()
    }
}

/// An opened encoder's `initial_padding`: the priming samples before the first input.
pub(crate) fn initial_padding(context: &Context) -> i32 {
    // SAFETY: the context is a valid AVCodecContext owned by `context`; a plain read.
    #[allow(unsafe_code)]
    unsafe {
        (*context.as_ptr()).initial_padding
    }
}
