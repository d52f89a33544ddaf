/* Stand-in for econda's emos3.js, which an operator hosts on their own server. It only
   records that it ran, so the demo shows when econda would have started measuring. */
window.emos3 = window.emos3 || {}
window.emos3.loaded = true
console.info('econda (stand-in) loaded after consent')
