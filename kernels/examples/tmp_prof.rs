use descent_kernels::{Adam, Rule, SignDescent};
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}
#[target_feature(enable = "avx2,fma")]
unsafe fn plain_sign(p: &mut [f32], g: &[f32], lr: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * sign(g);
    }
}
#[target_feature(enable = "avx2,fma")]
unsafe fn plain_adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], t: i32) {
    let (lr, b1, b2, eps) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32);
    let a = lr / (1.0 - b1.powi(t));
    let r = 1.0 / (1.0 - b2.powi(t)).sqrt();
    for i in 0..p.len() {
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        p[i] -= a * m[i] / (v[i].sqrt() * r + eps);
    }
}
fn main() {
    let which = std::env::args().nth(1).unwrap();
    let n: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let (mut p, g) = (vec![0.5f32; n], vec![0.1f32; n]);
    let mut st = vec![0.0f32; 2 * n];
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let reps = 2000;
    for t in 1..=reps {
        match which.as_str() {
            "sign" => SignDescent::new(1e-3f32)
                .step(1, &mut p, &g, &mut [])
                .unwrap(),
            "plain_sign" => unsafe { plain_sign(&mut p, &g, 1e-3) },
            "adam" => Adam::new(1e-3f32).step(t, &mut p, &g, &mut st).unwrap(),
            "plain_adam" => unsafe { plain_adam(&mut p, &g, &mut m, &mut v, t as i32) },
            _ => panic!(),
        }
    }
    println!("{}", p[0]);
}
