//! Volume 0–200 %, applied to PCM before encoding and ramped across one frame so a
//! change never clicks.

/// Highest volume the seed API allows, in percent.
pub const MAX_VOLUME: u16 = 200;

/// Per-stream gain with a one-frame linear ramp between settings.
#[derive(Debug, Clone)]
pub struct Gain {
    current: f32,
    target: f32,
}

impl Default for Gain {
    fn default() -> Self {
        Gain { current: 1.0, target: 1.0 }
    }
}

impl Gain {
    /// Sets the target volume in percent (0–200); the next frame ramps to it.
    pub fn set_percent(&mut self, percent: u16) {
        self.target = percent.min(MAX_VOLUME) as f32 / 100.0;
    }

    /// True while the gain changes nothing (100 %, and no ramp under way).
    pub fn is_unity(&self) -> bool {
        self.current == 1.0 && self.target == 1.0
    }

    /// The volume the stream is heading to, in percent.
    pub fn percent(&self) -> u16 {
        (self.target * 100.0).round() as u16
    }

    /// Scales one frame in place, saturating at i16's range.
    pub fn apply(&mut self, pcm: &mut [i16], channels: usize) {
        if self.current == 1.0 && self.target == 1.0 {
            return; // the common case costs nothing
        }
        let frames = pcm.len() / channels;
        let step = (self.target - self.current) / frames.max(1) as f32;
        let mut g = self.current;
        for frame in pcm.chunks_exact_mut(channels) {
            g += step;
            for s in frame {
                *s = (*s as f32 * g).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16;
            }
        }
        self.current = self.target;
    }
}

/// RFC 6464 audio level of a frame: 0 (loudest, 0 dBov) to 127 (silence), as -dBov.
pub fn audio_level(pcm: &[i16]) -> u8 {
    level_of(pcm.iter().map(|&s| s as f64 / 32768.0), pcm.len())
}

/// [`audio_level`] of a frame in floats at full scale ±1.0.
pub fn audio_level_f32(pcm: &[f32]) -> u8 {
    level_of(pcm.iter().map(|&s| s as f64), pcm.len())
}

fn level_of(samples: impl Iterator<Item = f64>, n: usize) -> u8 {
    if n == 0 {
        return 127;
    }
    let rms = (samples.map(|s| s * s).sum::<f64>() / n as f64).sqrt();
    if rms <= 0.0 {
        return 127;
    }
    (-20.0 * rms.log10()).round().clamp(0.0, 127.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unity_gain_leaves_samples_alone() {
        let mut g = Gain::default();
        let mut pcm = vec![1000i16, -2000, 32767, -32768];
        g.apply(&mut pcm, 2);
        assert_eq!(pcm, vec![1000, -2000, 32767, -32768]);
    }

    #[test]
    fn change_ramps_over_one_frame_then_holds() {
        let mut g = Gain::default();
        g.set_percent(0);
        let mut pcm = vec![10000i16; 960];
        g.apply(&mut pcm, 1);
        // Ramp: monotonically falling from ~1.0 to exactly 0.0 at the end of the frame.
        assert!(pcm[0] > 9900, "{}", pcm[0]);
        assert!(pcm.windows(2).all(|w| w[1] <= w[0]));
        assert_eq!(pcm[959], 0);
        let mut next = vec![10000i16; 960];
        g.apply(&mut next, 1);
        assert!(next.iter().all(|&s| s == 0));
    }

    #[test]
    fn double_volume_saturates_instead_of_wrapping() {
        let mut g = Gain::default();
        g.set_percent(200);
        let mut warm = vec![0i16; 960];
        g.apply(&mut warm, 2);
        let mut pcm = vec![30000i16, -30000, 100, -100];
        g.apply(&mut pcm, 2);
        assert_eq!(pcm, vec![32767, -32768, 200, -200]);
        assert_eq!(g.percent(), 200);
    }

    #[test]
    fn volume_is_capped_at_200() {
        let mut g = Gain::default();
        g.set_percent(500);
        assert_eq!(g.percent(), 200);
    }

    #[test]
    fn audio_level_spans_silence_to_full_scale() {
        assert_eq!(audio_level(&[0; 960]), 127);
        let full: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { 32767 } else { -32767 }).collect();
        assert_eq!(audio_level(&full), 0);
        let quiet = vec![328i16; 960]; // -40 dBov
        assert_eq!(audio_level(&quiet), 40);
        assert_eq!(audio_level_f32(&[0.0; 960]), 127);
        assert_eq!(audio_level_f32(&[0.01; 960]), 40);
        assert_eq!(audio_level_f32(&[-1.5; 960]), 0, "decoded floats may pass full scale");
    }
}
